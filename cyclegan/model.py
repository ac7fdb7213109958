"""`CycleGAN`: both generators (and optionally both discriminators) of one unpaired translation.

    from cyclegan import CycleGAN
    model = CycleGAN.from_pretrained("path/or/user-repo")      # validated config, strict, safetensors only
    zebra = model.G_AB(horse)                                    # NCHW float in [-1, 1]

A model is built from a `cyclegan.config.CycleGANConfig` (architecture, domain names, loss weights):
`CycleGAN(config)`, or `CycleGAN(ngf=8, n_blocks=3, ...)` with the config's fields as keywords.
`model.config` is that dataclass; `model.ngf` etc. read it. `save_pretrained` writes it whole to config.json
and the weights to model.safetensors, `push_to_hub` publishes both (huggingface_hub's PyTorchModelHubMixin).
`from_pretrained` validates config.json (bounds and a memory estimate) before it downloads the weights or
builds any tensor, then loads strictly.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from safetensors import safe_open
from torch import nn

from .config import MAX_CONFIG_BYTES, ConfigError, CycleGANConfig
from .networks import PatchDiscriminator, build_generator, init_weights

DIRECTIONS = ("AtoB", "BtoA")
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
_CONFIG_FIELDS = frozenset(CycleGANConfig.__dataclass_fields__)
# from_pretrained builds a model whose weights file does not fill it only up to this size (float32 bytes), to
# name each missing or mis-shaped tensor; a bigger one is refused from the file's header alone.
NAMED_REPORT_MAX_BYTES = 32 * 2 ** 20


class CycleGAN(nn.Module, PyTorchModelHubMixin, library_name="cyclegan", pipeline_tag="image-to-image",
               license="mit", tags=["cyclegan", "image-to-image", "unpaired-image-translation", "pytorch"]):
    """G_AB: A -> B, G_BA: B -> A; D_A tells real A from G_BA(b), D_B real B from G_AB(a).

    `CycleGAN(config)` or `CycleGAN(**fields)` (CycleGANConfig's fields; omitted ones take its defaults).
    The config's kinds and ranges are checked (`CycleGANConfig.check_ranges`) before any network is built;
    raises ConfigError (a ValueError) otherwise. The memory cap is `from_pretrained`'s (and a server's) to
    apply: a model built in code is the caller's choice. The config's fields read through: `model.ngf` is
    `model.config.ngf`. Loss weights travel with the model (config.json) so that a viewer can weigh the
    terms as training did.
    """

    def __init__(self, config: CycleGANConfig | None = None, **fields):
        super().__init__()
        if config is None:
            config = CycleGANConfig(**fields)
        elif fields:
            raise TypeError(f"CycleGAN takes a config or keyword fields, not both (got {', '.join(sorted(fields))})")
        elif not isinstance(config, CycleGANConfig):
            raise TypeError(f"config must be a CycleGANConfig, got {type(config).__name__}")
        config.check_ranges()
        self._config = config
        depth = config.n_blocks if config.netG == "resnet" else config.unet_depth
        self.G_AB = init_weights(build_generator(config.netG, config.ngf, depth, config.use_dropout))
        self.G_BA = init_weights(build_generator(config.netG, config.ngf, depth, config.use_dropout))
        if config.with_discriminators:
            self.D_A = init_weights(PatchDiscriminator(ndf=config.ndf, n_layers=config.n_layers_D))
            self.D_B = init_weights(PatchDiscriminator(ndf=config.ndf, n_layers=config.n_layers_D))
        else:
            self.D_A = self.D_B = None
        self.source = "new (random weights)"  # where the weights came from; set by from_pretrained

    @property
    def config(self) -> CycleGANConfig:
        """The architecture, domain names and loss weights this model was built with (frozen dataclass)."""
        return self._config

    def __getattr__(self, name: str):
        # model.ngf, model.lambda_A, ...: read-only views of model.config (nn.Module's lookup comes first).
        config = self.__dict__.get("_config")
        if config is not None and name in _CONFIG_FIELDS:
            return getattr(config, name)
        return super().__getattr__(name)

    def __setattr__(self, name: str, value) -> None:
        if name in _CONFIG_FIELDS:
            raise AttributeError(f"model.{name} is read from model.config (a frozen CycleGANConfig); build a model "
                                 f"from config.replace({name}=...) instead")
        super().__setattr__(name, value)

    # -- directions -------------------------------------------------------------------------------------
    def direction_label(self, direction: str) -> str:
        """"AtoB" -> "horse -> zebra" with the model's domain names."""
        src, dst = (self.name_A, self.name_B) if check_direction(direction) == "AtoB" else (self.name_B, self.name_A)
        return f"{src} -> {dst}"

    def generators(self, direction: str) -> tuple[nn.Module, nn.Module]:
        """(G, F) for a direction: G translates, F maps back (and is the identity generator for inputs of G)."""
        return (self.G_AB, self.G_BA) if check_direction(direction) == "AtoB" else (self.G_BA, self.G_AB)

    def discriminator_of_target(self, direction: str) -> nn.Module | None:
        """The discriminator that judges G's outputs: D_B for A -> B, D_A for B -> A."""
        return self.D_B if check_direction(direction) == "AtoB" else self.D_A

    def forward(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        return self.generators(direction)[0](x)

    # -- publishing and loading ---------------------------------------------------------------------------
    def without_discriminators(self) -> "CycleGAN":
        """A model sharing this one's generators, with no discriminators (what a published model holds)."""
        if not self.with_discriminators:
            return self
        light = CycleGAN(self.config.replace(with_discriminators=False))
        light.G_AB, light.G_BA = self.G_AB, self.G_BA
        return light

    def _save_pretrained(self, save_directory: Path) -> None:
        # model.safetensors by the mixin; config.json is the whole CycleGANConfig (the mixin writes its own
        # config.json only when none exists after this method).
        super()._save_pretrained(save_directory)
        text = json.dumps(self.config.to_dict(), sort_keys=True, indent=2)
        (Path(save_directory) / CONFIG_NAME).write_text(text + "\n")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, force_download: bool = False,
                        token: str | bool | None = None, cache_dir: str | Path | None = None,
                        local_files_only: bool = False, revision: str | None = None, map_location: str = "cpu",
                        max_model_mb: float | None = None) -> "CycleGAN":
        """A model from a local folder or a Hub repo holding config.json and model.safetensors.

        Order: config.json is read (at most 64 KB) and validated (`CycleGANConfig.validate(max_model_mb)`)
        before the weights are downloaded or any tensor is built; then the safetensors header's names and
        shapes are compared with the model's (strict), and only then are the tensors read.
        Raises ConfigError (bad config), FileNotFoundError (no config.json / no model.safetensors; pickle
        files are never loaded) or ValueError (weights that do not match the config), each with one line."""
        model_id = str(pretrained_model_name_or_path)
        local = os.path.isdir(model_id)
        fetch = dict(revision=revision, cache_dir=cache_dir, force_download=force_download,
                     local_files_only=local_files_only, token=token)

        def locate(filename: str, missing: str, max_bytes: int, what: str) -> Path:
            # A file over max_bytes is refused before it is read (local) or downloaded (Hub: its size comes
            # from the Hub's metadata; when that is unavailable, e.g. offline, the download reports why).
            if local:
                path = Path(model_id) / filename
                if not path.is_file():
                    raise FileNotFoundError(missing)
                size = path.stat().st_size
            else:
                path = None
                size = None if local_files_only else _hub_file_size(model_id, filename, revision, token)
            if size is not None and size > max_bytes:
                raise ValueError(f"{model_id}: {filename} is {_size(size)}, over the {_size(max_bytes)} that {what}")
            if path is not None:
                return path
            try:
                return Path(hf_hub_download(model_id, filename, **fetch))
            except EntryNotFoundError:
                raise FileNotFoundError(missing) from None

        config_path = locate(CONFIG_NAME, f"{model_id} has no {CONFIG_NAME}: it does not say which architecture "
                                          f"its weights belong to", MAX_CONFIG_BYTES, "a config.json may take")
        config = CycleGANConfig.from_json_file(config_path)
        try:
            config.validate(max_model_mb)
        except ConfigError as e:
            raise ConfigError(f"{model_id}: {e}") from None
        path = locate(WEIGHTS_NAME, _no_safetensors(model_id), max_weights_bytes(config),
                      "the weights of its config.json's architecture take (float64 at most)")
        if local:
            source = f"local folder {os.path.abspath(model_id)}"
        else:
            source = f"Hub repo {model_id} (revision {revision or 'main'}, commit {path.parent.name[:12]})"
        # Allocate the model only when the file can fill it (or the model is small, for a report that names
        # each tensor): weights from another config are refused from the header, before any allocation.
        want = config.parameter_count()["total"]
        found = sum(math.prod(shape) for shape in _read_header(path).values())
        if found != want and want * 4 > NAMED_REPORT_MAX_BYTES:
            raise ValueError(f"{path} holds {found:,} values; the architecture in its config.json has {want:,} "
                             f"parameters: the weights belong to another config")
        model = cls(config)
        model.load_weights_file(path, map_location)
        model.source = source
        return model.eval()

    def load_weights_file(self, path: str | Path, map_location: str = "cpu") -> None:
        """Strict load from a safetensors file: its tensor names and shapes (read from the header, no data) must
        match the model's before any tensor is read. Raises ValueError naming what differs."""
        _check_weights_file(path, self.state_dict())
        try:
            with safe_open(str(path), framework="pt", device=str(map_location)) as f:
                state = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # e.g. the file changed since the check
            raise ValueError(f"{path} is not a readable safetensors file: {str(e).splitlines()[0][:200]}") from None
        self.load_weights(state)

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Strict load: any missing, unexpected or mis-shaped tensor is an error that names it."""
        problems = state_dict_mismatch(self.state_dict(), state_dict)
        if problems:
            raise ValueError("checkpoint does not match the model's config: " + " | ".join(problems))
        self.load_state_dict(state_dict, strict=True)


def _read_header(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a safetensors file, from its header (no tensor data is read). Raises
    ValueError (one line) for a truncated, corrupt or non-safetensors file."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:
        raise ValueError(f"{path} is not a readable safetensors file: {str(e).splitlines()[0][:200]}") from None


def _check_weights_file(path: str | Path, expected: Mapping) -> None:
    """Compares a safetensors file's header with the state dict `expected`. Raises ValueError with one line."""
    problems = state_dict_mismatch(expected, _read_header(path))
    if problems:
        raise ValueError(f"{path} does not match the model's config: " + " | ".join(problems))


def state_dict_mismatch(expected: Mapping, found: Mapping, *, shown_as: Mapping[str, str] | None = None,
                        limit: int | None = 8) -> list[str]:
    """What keeps `found` from loading strictly into `expected`, as parts of one line: "missing tensors: ...",
    "unexpected tensors: ...", "mis-shaped tensors: name: file (..) vs expected (..)"; [] when they match.

    Values are tensors or shapes. `shown_as` maps a key of `found` to the name to print (e.g. its name in the
    original file); `limit` caps the names listed per part (None: all)."""
    def shape(v) -> tuple:
        return tuple(v.shape) if hasattr(v, "shape") else tuple(v)

    def name(k: str) -> str:
        return (shown_as or {}).get(k, k)

    def listed(items: list[str], sep: str = ", ") -> str:
        if limit is None or len(items) <= limit:
            return sep.join(items)
        return sep.join(items[:limit]) + " ..."

    missing = [k for k in expected if k not in found]
    unexpected = [name(k) for k in found if k not in expected]
    wrong = [f"{name(k)}: file {shape(found[k])} vs expected {shape(expected[k])}"
             for k in expected if k in found and shape(found[k]) != shape(expected[k])]
    parts = []
    if missing:
        parts.append("missing tensors: " + listed(sorted(missing)))
    if unexpected:
        parts.append("unexpected tensors: " + listed(sorted(unexpected)))
    if wrong:
        parts.append("mis-shaped tensors: " + listed(sorted(wrong), "; "))
    return parts


def max_weights_bytes(config: CycleGANConfig) -> int:
    """The largest model.safetensors that can match `config`: every parameter in float64 (8 bytes), plus
    1 MB for the header. Float32 weights take half of it."""
    return 8 * config.parameter_count()["total"] + 2 ** 20


def _size(n: int) -> str:
    return f"{n:,} bytes" if n < 10**6 else f"{n / 1e6:,.1f} MB"


def _hub_file_size(repo_id: str, filename: str, revision: str | None, token) -> int | None:
    """The size the Hub's metadata gives for a file (one HEAD request), or None when it cannot be had."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    if constants.HF_HUB_OFFLINE:
        return None
    try:
        return get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision), token=token).size
    except Exception:  # not found, no network, ...: hf_hub_download then says what is wrong
        return None


def _no_safetensors(where: str) -> str:
    return (f"{where} has no model.safetensors. CycleGAN loads safetensors weights only and refuses pickle files "
            f"(pytorch_model.bin, .pth): they can run arbitrary code. A reference-implementation .pth can be "
            f"converted with `python -m cyclegan.convert`.")


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return direction
