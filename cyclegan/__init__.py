"""CycleGAN (Zhu et al. 2017, arXiv 1703.10593) in compact PyTorch."""
import importlib

# Loaded on first use (PEP 562), so that `python -m cyclegan.<tool>` can take Ctrl-C and print its --help
# before torch is imported.
_EXPORTS = {"CycleGANConfig": "config", "ConfigError": "config", "generator_terms": "losses", "CycleGAN": "model",
            "PatchDiscriminator": "networks", "ResnetGenerator": "networks", "UnetGenerator": "networks"}

__all__ = ["CycleGAN", "CycleGANConfig", "ConfigError", "generator_terms", "PatchDiscriminator", "ResnetGenerator",
           "UnetGenerator"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))
