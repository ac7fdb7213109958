"""`CycleGANConfig`: the one place where a CycleGAN's architecture, domain names and loss weights are listed.

    from cyclegan.config import CycleGANConfig
    cfg = CycleGANConfig(name_A="horse", name_B="zebra", ngf=64, n_blocks=9)   # the paper's 256x256 model
    cfg.validate()               # bounds and a memory estimate, before any tensor exists
    CycleGAN(cfg)                # builds it; model.config is this object; config.json is cfg.to_dict()

A model's `config.json` is this dataclass as a flat JSON object (`to_dict`), read back by `from_dict`, which
also reads the files written before this module existed (same keys; a U-Net's depth was then stored as
`n_blocks`). Unknown keys are an error: a misspelt `lamda_A` must not silently train with the default.

`validate()` guards a server that loads configs written by strangers (a public Space): every size has a
stated range and the whole model has a memory estimate under a cap (`max_model_mb`, default
`DEFAULT_MAX_MODEL_MB` or the environment variable CYCLEGAN_MAX_MODEL_MB). All of it is arithmetic on the
config: nothing is allocated. Each refusal is a `ConfigError` (a ValueError) with one line naming the field
and the limit.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

GENERATORS = ("resnet", "unet")
DISCRIMINATORS = ("patch",)

# Ranges (inclusive). The paper's model is ngf 64, 9 residual blocks, ndf 64, 3 discriminator layers.
LIMITS = {
    "ngf": (1, 256),
    "ndf": (1, 256),
    "n_blocks": (0, 16),
    "unet_depth": (5, 12),        # and validate: 2**depth must fit the working size (512: at most 9)
    "n_layers_D": (1, 8),
    "lambda_A": (0.0, 1e4),
    "lambda_B": (0.0, 1e4),
    "lambda_identity": (0.0, 1e4),
}
MAX_NAME_LENGTH = 64
MAX_CONFIG_BYTES = 64 * 1024   # a config.json is a few hundred bytes; a bigger file is not read at all

# The working size for the memory estimate: the app's and translate's default longest side (a padded
# square canvas of this side).
WORKING_SIDE = 512
# The paper's generators (ngf 64, 9 blocks) with both discriminators come to about 300 MB at the working
# size by the estimate below (28.3M parameters): the default cap allows a few times that.
DEFAULT_MAX_MODEL_MB = 1024.0
MAX_MODEL_MB_ENV = "CYCLEGAN_MAX_MODEL_MB"
BYTES_PER_VALUE = 4            # float32 weights and activations
ACTIVATION_FACTOR = 3          # live tensors at the peak: a layer's input, its output and a kept skip/residual


class ConfigError(ValueError):
    """A config that is malformed or outside the bounds; the message is one line naming the field."""


@dataclass(frozen=True)
class CycleGANConfig:
    """Architecture, domain names and generator-loss weights of one CycleGAN (arXiv 1703.10593).

    Architecture (section 4 and appendix 7.2 of the paper; the reference implementation's option names):
      netG          "resnet" (c7s1-ngf, two stride-2 downsamplings, n_blocks residual blocks, two
                    upsamplings) or "unet" (unet_depth stride-2 halvings with skip connections)
      ngf           generator width: channels of its first layer (64 in the paper)
      n_blocks      residual blocks of the ResNet generator (9 for 256x256 images, 6 for 128x128); unused
                    by the U-Net
      unet_depth    halvings of the U-Net generator (`num_downs` in the reference; 8 for 256x256); inputs
                    must be multiples of 2**unet_depth; unused by the ResNet generator
      use_dropout   dropout 0.5 in the residual blocks / inner U-Net levels
      with_discriminators   whether the model holds D_A and D_B (training needs them; a published model
                    may carry them so that viewers can show D's scores)
      netD, ndf, n_layers_D the discriminator: "patch" = PatchGAN; n_layers_D 3 is the 70x70 PatchGAN
    Domains: name_A, name_B (used in labels only).
    Generator objective (cyclegan.losses.generator_terms):
      lambda_A, lambda_B    weights of the forward (A -> B -> A) and backward (B -> A -> B) cycle L1 terms
      lambda_identity       identity weight as a fraction of lambda_A / lambda_B; 0 turns identity off
      use_gan, use_cycle_A, use_cycle_B   the paper's ablations (Table 4): adversarial terms, forward cycle,
                    backward cycle on or off

    Constructing one checks the types (a bool is not an int, a string is not a number) and raises
    ConfigError; `validate()` checks the ranges and the memory estimate.
    """

    name_A: str = "A"
    name_B: str = "B"
    netG: str = "resnet"
    ngf: int = 64
    n_blocks: int = 9
    unet_depth: int = 8
    use_dropout: bool = False
    with_discriminators: bool = False
    netD: str = "patch"
    ndf: int = 64
    n_layers_D: int = 3
    lambda_A: float = 10.0
    lambda_B: float = 10.0
    lambda_identity: float = 0.5
    use_gan: bool = True
    use_cycle_A: bool = True
    use_cycle_B: bool = True

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            kind = _FIELD_TYPES[f.name]
            if kind is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"config: {f.name} must be a number, got {_show(value)}")
                object.__setattr__(self, f.name, float(value))
            elif kind is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"config: {f.name} must be an integer, got {_show(value)}")
            elif not isinstance(value, kind):
                raise ConfigError(f"config: {f.name} must be {_KIND_NAMES[kind]}, got {_show(value)}")

    # -- reading and writing ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "CycleGANConfig":
        """A config from a config.json object (this format, or the one written before this dataclass).

        Required keys: netG, ngf, and the depth of that generator (n_blocks for "resnet", unet_depth for
        "unet"; an old U-Net file stored its depth as n_blocks and still loads). Other keys default.
        Raises ConfigError (one line) for a non-object, unknown keys (all named), missing keys, or wrong
        types. Does not check ranges: call `validate()`."""
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a JSON object of settings, got {type(d).__name__}")
        d = dict(d)
        names = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in d if k not in names)
        if unknown:
            raise ConfigError(f"config has unknown key(s): {', '.join(unknown)[:300]} "
                              f"(known: {', '.join(sorted(names))})")
        if d.get("netG") == "unet" and "unet_depth" not in d and "n_blocks" in d:
            d["unet_depth"] = d.pop("n_blocks")  # the old meaning of n_blocks for a U-Net
        depth = "unet_depth" if d.get("netG") == "unet" else "n_blocks"
        missing = [k for k in ("netG", "ngf", depth) if k not in d]
        if missing:
            raise ConfigError(f"config is missing required key(s): {', '.join(missing)}")
        return cls(**d)

    @classmethod
    def from_json_file(cls, path: str | Path) -> "CycleGANConfig":
        """`from_dict` on a config.json file; refuses a file over MAX_CONFIG_BYTES without reading it.
        Raises ConfigError (one line naming the file)."""
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is {size} bytes; a config.json is at most {MAX_CONFIG_BYTES} bytes")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ConfigError(f"{path} is not valid JSON: {str(e).splitlines()[0][:200]}") from None
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def to_dict(self) -> dict:
        """Every field, JSON-ready (str, int, float, bool): what config.json holds."""
        return asdict(self)

    def replace(self, **changes) -> "CycleGANConfig":
        """A copy with some fields changed (types checked again)."""
        return replace(self, **changes)

    def differences(self, other: "CycleGANConfig") -> dict[str, tuple]:
        """{field: (self's value, other's value)} for the fields that differ (e.g. a resumed run's config vs
        the checkpoint's); empty when equal."""
        return {f.name: (getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
                if getattr(self, f.name) != getattr(other, f.name)}

    # -- derived sizes ------------------------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this for G(x) to have x's size: 4 for the ResNet generator (two
        stride-2 convolutions), 2**unet_depth for the U-Net."""
        return 4 if self.netG == "resnet" else 2 ** self.unet_depth

    @property
    def min_side(self) -> int:
        """The smallest input side (a multiple of `size_multiple`) that the generator accepts and, when the
        model has discriminators, at which the PatchGAN still gives at least one score on G(x): 8 for a
        ResNet generator with residual blocks alone, 24 with the 70x70 PatchGAN (n_layers_D 3).

        Derived from the layers' arithmetic: reflection padding p needs a side > p, instance norm needs
        more than one value per channel, a convolution needs an output side >= 1."""
        side = self.size_multiple
        while not self._accepts(side):
            side += self.size_multiple
        return side

    def _accepts(self, side: int) -> bool:
        return (_generator_accepts(self, side)
                and (not self.with_discriminators or _discriminator_accepts(self.n_layers_D, side)))

    # -- cost estimates (arithmetic only) -------------------------------------------------------------------
    def parameter_count(self) -> dict[str, int]:
        """Exact parameter counts {"G_AB", "G_BA", "D_A", "D_B", "total"} of the networks this config builds
        (D_A, D_B are 0 without discriminators); computed from the layer shapes, nothing allocated."""
        if self.netG == "resnet":
            g = _resnet_params(self.ngf, self.n_blocks)
        else:
            g = _unet_params(self.ngf, self.unet_depth)
        d = _patch_params(self.ndf, self.n_layers_D) if self.with_discriminators else 0
        return {"G_AB": g, "G_BA": g, "D_A": d, "D_B": d, "total": 2 * g + 2 * d}

    def memory_estimate_mb(self, side: int = WORKING_SIDE) -> float:
        """Estimated memory (MiB) to hold the model and translate one side x side image: all weights in
        float32 plus ACTIVATION_FACTOR times the largest activation of one generator (or discriminator)
        forward in float32. An estimate for refusing absurd configs, not a measurement."""
        if self.netG == "resnet":
            largest = self.ngf * (side + 6) ** 2            # the last reflection padding, full resolution
        else:
            largest = 2 * self.ngf * (side // 2) ** 2       # the skip concatenation of the first level
        if self.with_discriminators:
            largest = max(largest, self.ndf * (side // 2 + 1) ** 2)
        values = self.parameter_count()["total"] + ACTIVATION_FACTOR * largest
        return values * BYTES_PER_VALUE / 2 ** 20

    # -- bounds -------------------------------------------------------------------------------------------
    def check_ranges(self) -> "CycleGANConfig":
        """Checks the kinds, names and every size's range (LIMITS); returns self. What any model built from
        this config must satisfy: `CycleGAN(config)` calls it. Raises ConfigError (one line, field and limit)."""
        if self.netG not in GENERATORS:
            raise ConfigError(f"config: netG {self.netG!r} is not a known generator (known: {', '.join(GENERATORS)})")
        if self.netD not in DISCRIMINATORS:
            raise ConfigError(f"config: netD {self.netD!r} is not a known discriminator "
                              f"(known: {', '.join(DISCRIMINATORS)})")
        for name in ("name_A", "name_B"):
            value = getattr(self, name)
            if not 1 <= len(value) <= MAX_NAME_LENGTH or not value.isprintable():
                raise ConfigError(f"config: {name} must be 1 to {MAX_NAME_LENGTH} printable characters, "
                                  f"got {_show(value)}")
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"config: {name} = {value} is not a finite number")
            if value < lo:
                raise ConfigError(f"config: {name} = {_number(value)} is below the limit {lo:g}")
            if value > hi:
                raise ConfigError(f"config: {name} = {_number(value)} is above the limit {hi:g}")
        return self

    def validate(self, max_model_mb: float | None = None, working_side: int = WORKING_SIDE) -> "CycleGANConfig":
        """Everything `check_ranges` checks, plus what a server must know before it builds a stranger's model:
        the U-Net depth must fit the working size, and the memory estimate must be under a cap. Returns self;
        raises ConfigError with one line that names the field (or the estimate) and the limit.

        max_model_mb: cap on `memory_estimate_mb(working_side)`; None reads CYCLEGAN_MAX_MODEL_MB, else
        DEFAULT_MAX_MODEL_MB (math.inf: no cap). working_side: the image side (pixels) the estimate and the
        U-Net depth are judged at."""
        if self.netG == "unet" and self.unet_depth > math.log2(working_side):  # (no 2**depth: depth may be huge)
            deepest = int(math.log2(working_side))
            raise ConfigError(f"config: unet_depth = {_number(self.unet_depth)} needs image sides that are multiples "
                              f"of 2**unet_depth, more than the working size {working_side}: the limit is "
                              f"unet_depth {deepest}")
        self.check_ranges()
        cap = max_model_mb if max_model_mb is not None else max_model_mb_setting()
        estimate = self.memory_estimate_mb(working_side)
        if estimate > cap:
            params = self.parameter_count()["total"]
            raise ConfigError(f"config: this architecture (netG {self.netG}, ngf {self.ngf}, "
                              f"{self._depth_text()}, ndf {self.ndf}) has {params / 1e6:.1f}M parameters and needs "
                              f"about {estimate:.0f} MB at {working_side}x{working_side}, above the limit "
                              f"{cap:g} MB ({MAX_MODEL_MB_ENV})")
        return self

    def _depth_text(self) -> str:
        return f"n_blocks {self.n_blocks}" if self.netG == "resnet" else f"unet_depth {self.unet_depth}"


_FIELD_TYPES = {"name_A": str, "name_B": str, "netG": str, "ngf": int, "n_blocks": int, "unet_depth": int,
                "use_dropout": bool, "with_discriminators": bool, "netD": str, "ndf": int, "n_layers_D": int,
                "lambda_A": float, "lambda_B": float, "lambda_identity": float, "use_gan": bool,
                "use_cycle_A": bool, "use_cycle_B": bool}
_KIND_NAMES = {str: "a string", bool: "true or false"}
assert set(_FIELD_TYPES) == {f.name for f in fields(CycleGANConfig)}


def max_model_mb_setting() -> float:
    """The memory cap in MiB: CYCLEGAN_MAX_MODEL_MB if set (a positive number), else DEFAULT_MAX_MODEL_MB."""
    raw = os.environ.get(MAX_MODEL_MB_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_MODEL_MB
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{MAX_MODEL_MB_ENV}={raw!r} must be a positive number of megabytes")
    return value


def _number(value) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 24 else f"{text[:12]}... ({len(text)} digits)"


def _show(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


# -- layer arithmetic (mirrors cyclegan.networks; tests/test_config.py checks it against the real modules) ----
def _conv(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def _resnet_params(ngf: int, n_blocks: int) -> int:
    return (_conv(3, ngf, 7) + _conv(ngf, 2 * ngf, 3) + _conv(2 * ngf, 4 * ngf, 3)
            + n_blocks * 2 * _conv(4 * ngf, 4 * ngf, 3)
            + _conv(4 * ngf, 2 * ngf, 3) + _conv(2 * ngf, ngf, 3) + _conv(ngf, 3, 7))


def _unet_params(ngf: int, depth: int) -> int:
    total = _conv(8 * ngf, 8 * ngf, 4) * 2                          # innermost level: down, up
    total += (depth - 5) * (_conv(8 * ngf, 8 * ngf, 4) + _conv(16 * ngf, 8 * ngf, 4))
    for mult in (4, 2, 1):
        total += _conv(ngf * mult, 2 * ngf * mult, 4) + _conv(4 * ngf * mult, ngf * mult, 4)
    return total + _conv(3, ngf, 4) + _conv(2 * ngf, 3, 4)          # outermost level


def _patch_params(ndf: int, n_layers: int) -> int:
    total, mult = _conv(3, ndf, 4), 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2 ** n, 8)
        total += _conv(ndf * prev, ndf * mult, 4)
    return total + _conv(ndf * mult, 1, 4)


def _conv_out(side: int, k: int, stride: int, pad: int) -> int:
    return (side + 2 * pad - k) // stride + 1


def _generator_accepts(cfg: CycleGANConfig, side: int) -> bool:
    if cfg.netG == "unet":
        # Each halving must leave at least one pixel; the innermost level has no norm, the others normalise
        # sides >= 2.
        return side % 2 ** cfg.unet_depth == 0 and side >= 2 ** cfg.unet_depth
    if side <= 3:                                      # ReflectionPad2d(3)
        return False
    s = side
    for _ in range(2):                                 # stride-2 3x3 convs, then instance norm
        s = _conv_out(s, 3, 2, 1)
        if s * s < 2:
            return False
    return cfg.n_blocks == 0 or s > 1                  # residual blocks: ReflectionPad2d(1)


def _discriminator_accepts(n_layers: int, side: int) -> bool:
    s = _conv_out(side, 4, 2, 1)                       # first conv, no norm
    if s < 1:
        return False
    for n in range(1, n_layers + 1):
        s = _conv_out(s, 4, 2 if n < n_layers else 1, 1)
        if s * s < 2:                                  # instance norm needs more than one value
            return False
    return _conv_out(s, 4, 1, 1) >= 1                  # the 1-channel score conv
