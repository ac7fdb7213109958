"""CycleGAN (Zhu et al. 2017, arXiv 1703.10593) in compact PyTorch."""
from .config import CycleGANConfig, ConfigError
from .losses import generator_terms
from .model import CycleGAN
from .networks import PatchDiscriminator, ResnetGenerator, UnetGenerator

__all__ = ["CycleGAN", "CycleGANConfig", "ConfigError", "generator_terms", "PatchDiscriminator", "ResnetGenerator",
           "UnetGenerator"]
__version__ = "0.1.0"
