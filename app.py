"""The cycle-consistency explorer: `python app.py` serves it (http://127.0.0.1:7860, port from GRADIO_SERVER_PORT).

Importing this module does nothing but define things: `Settings.from_env()` reads the settings, `build_demo`
builds the page from them (tests build it in-process), `serve` queues and launches it, `main` does all three.
The package computes every panel and number (`cyclegan.explain`); this file knows the page: the models/ folder,
the model picker, the ablation list and every string a visitor reads. Settings are listed in `Settings` and in
the README's app section.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from cyclegan import released, render
from cyclegan.backends import accelerate as accelerate_generators
from cyclegan.explain import compare, explain_steps
from cyclegan.images import DEFAULT_MAX_PIXELS, ImageError, list_images, load_rgb, pil_to_tensor, tensor_to_uint8, \
    write_png_once
from cyclegan.loading import load_model
from cyclegan.model import CycleGAN
from cyclegan.tiled import generate as tiled_generate

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("cyclegan.app")

# The paper's ablations (Table 4) shipped under models/ablation/NAME: caption, and what to look for.
ABLATIONS = {
    "cycle_alone": "cycle alone",
    "gan_alone": "GAN alone",
    "gan_forward_cycle": "GAN + forward cycle",
    "gan_backward_cycle": "GAN + backward cycle",
    "full_no_identity": "full, no identity",
    "full": "full CycleGAN",
}
ABLATION_HINTS = {   # measured on the held-out photos (README, "Why both losses?"); cycle L1 there in brackets
    "cycle_alone": "no adversarial term: G(x) is a pale copy of the photo, and x comes back (0.24).",
    "gan_alone": "no cycle term: nothing asks F(G(x)) to bring x back; it comes back pale and smeared (0.38).",
    "gan_forward_cycle": "only x -> G(x) -> F(G(x)) must come back: tinted sketches, and x returns best (0.22).",
    "gan_backward_cycle": "only y -> F(y) -> G(F(y)) must come back: x's own cycle drifts most (0.43).",
    "full_no_identity": "both cycles, no identity term: G draws a grey negative, yet x still comes back (0.27).",
    "full": "the paper's objective: content in place in G(x), x comes back (0.24).",
}
DEFAULT_KEY = "default"
BOX_MODES = ("off", "allowlist", "open")
LARGE_MODEL_PARAMS = 4_000_000     # generators above this many parameters are shown at Settings.large_model_side


# -- settings -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Everything the page and its limits depend on; `from_env` reads them from CYCLEGAN_* variables."""
    model: str = ""                 # CYCLEGAN_MODEL: folder or Hub repo id[@revision]; "" = the embedded default
    models_dir: Path = ROOT / "models"          # CYCLEGAN_MODELS_DIR
    examples: Path = ROOT / "examples"          # CYCLEGAN_EXAMPLES
    max_side: int = 512             # CYCLEGAN_MAX_SIDE: display size (longest side) for small models
    large_model_side: int = 256     # CYCLEGAN_LARGE_MODEL_SIDE: display size for the paper's architecture
    max_pixels: int = DEFAULT_MAX_PIXELS        # CYCLEGAN_MAX_PIXELS: larger uploads are refused before decoding
    max_file_size: str = "20mb"     # CYCLEGAN_MAX_FILE_SIZE
    threads: int = 0                # CYCLEGAN_THREADS: torch threads (0 = the CPUs this process may use)
    concurrency: int = 1            # CYCLEGAN_CONCURRENCY: short requests computed at once
    long_concurrency: int = 1       # CYCLEGAN_LONG_CONCURRENCY: long jobs (full resolution, released downloads)
    long_timeout_s: float = 300.0   # CYCLEGAN_LONG_TIMEOUT: a long job stops after this many seconds
    queue_size: int = 32            # CYCLEGAN_QUEUE_SIZE: waiting requests; one more is told the server is busy
    cache_ttl_s: int = 3600         # CYCLEGAN_CACHE_TTL: uploads and outputs are deleted after this many seconds
    model_box: str = "open"         # CYCLEGAN_MODEL_BOX: off | allowlist | open
    model_allow: tuple = ()         # CYCLEGAN_MODEL_ALLOW: extra repo ids / folders for the allow list (commas)
    keep_models: int = 3            # CYCLEGAN_KEEP_MODELS: models loaded from the box kept in memory
    backend: str = ""               # CYCLEGAN_BACKEND: auto | torch | onnxruntime ("" = cyclegan.backends' default)
    released_cache: Path = Path.home() / ".cache" / "cyclegan" / "released"   # CYCLEGAN_RELEASED_CACHE

    ENV = {"model": "CYCLEGAN_MODEL", "models_dir": "CYCLEGAN_MODELS_DIR", "examples": "CYCLEGAN_EXAMPLES",
           "max_side": "CYCLEGAN_MAX_SIDE", "large_model_side": "CYCLEGAN_LARGE_MODEL_SIDE",
           "max_pixels": "CYCLEGAN_MAX_PIXELS", "max_file_size": "CYCLEGAN_MAX_FILE_SIZE",
           "threads": "CYCLEGAN_THREADS", "concurrency": "CYCLEGAN_CONCURRENCY",
           "long_concurrency": "CYCLEGAN_LONG_CONCURRENCY", "long_timeout_s": "CYCLEGAN_LONG_TIMEOUT",
           "queue_size": "CYCLEGAN_QUEUE_SIZE", "cache_ttl_s": "CYCLEGAN_CACHE_TTL",
           "model_box": "CYCLEGAN_MODEL_BOX", "model_allow": "CYCLEGAN_MODEL_ALLOW",
           "keep_models": "CYCLEGAN_KEEP_MODELS", "backend": "CYCLEGAN_BACKEND",
           "released_cache": "CYCLEGAN_RELEASED_CACHE"}

    @classmethod
    def from_env(cls, env=None, **overrides) -> "Settings":
        """Settings from `env` (default os.environ), then `overrides`. Raises ValueError naming a bad variable."""
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get(cls.ENV[f.name], "").strip()
            if not raw:
                continue
            kind = type(f.default)
            try:
                values[f.name] = (tuple(s.strip() for s in raw.split(",") if s.strip()) if kind is tuple
                                  else Path(raw) if isinstance(f.default, Path) else kind(raw))
            except ValueError:
                raise ValueError(f"{cls.ENV[f.name]}={raw!r} is not a valid {kind.__name__}") from None
        s = cls(**{**values, **overrides})
        if s.model_box not in BOX_MODES:
            raise ValueError(f"CYCLEGAN_MODEL_BOX={s.model_box!r}: use one of {', '.join(BOX_MODES)}")
        if s.backend not in ("", "auto", "torch", "onnxruntime"):
            raise ValueError(f"CYCLEGAN_BACKEND={s.backend!r}: use auto, torch or onnxruntime")
        for name in ("max_side", "large_model_side", "max_pixels", "concurrency", "long_concurrency", "queue_size",
                     "cache_ttl_s", "keep_models"):
            if getattr(s, name) < 1:
                raise ValueError(f"{cls.ENV[name]} must be at least 1, got {getattr(s, name)}")
        return s

    @property
    def torch_threads(self) -> int:
        return self.threads or len(os.sched_getaffinity(0))


def model_config(model: CycleGAN) -> dict:
    return model.config.to_dict()


def random_model() -> CycleGAN:
    """A tiny model with random weights, so that the app starts even with no trained model at hand."""
    torch.manual_seed(0)
    return CycleGAN(ngf=8, n_blocks=3, ndf=8, with_discriminators=True).eval()


def accelerate(model: CycleGAN, settings: Settings) -> CycleGAN:
    """The model with its generators on the fastest CPU engine (cyclegan.backends: ONNX Runtime when installed,
    else PyTorch; CYCLEGAN_BACKEND chooses). A failure keeps PyTorch and says so in model.source."""
    return accelerate_generators(model, ROOT / ".gradio" / "onnx", settings.torch_threads,
                                 backend=settings.backend or None)


def on_gpu(fn):
    """`spaces.GPU(fn)` on Hugging Face ZeroGPU hardware (the `spaces` package importable), else fn itself."""
    try:
        import spaces
        return spaces.GPU(fn)
    except Exception:  # not installed, or not usable here
        return fn


def generator_params(model: CycleGAN) -> int:
    return sum(p.numel() for p in model.G_AB.parameters())


# -- models --------------------------------------------------------------------------------------------------------
def default_model_folder(models: Path = ROOT / "models") -> Path | None:
    """The embedded default model: models/default, else the first models/*/config.json (sorted), else None."""
    if (models / "default" / "config.json").is_file():
        return models / "default"
    for config in sorted(models.glob("*/config.json")) if models.is_dir() else []:
        return config.parent
    return None


@dataclass
class Entry:
    model: CycleGAN
    origin: str                     # where it came from, in words
    kind: str                       # "embedded", "ablation", "released", "custom", "random"
    folder: Path | None = None      # a local folder (training examples, reference figures)
    torch_model: CycleGAN | None = None   # the PyTorch model when `model` runs in ONNX Runtime (tiled needs layers)

    def __post_init__(self):
        self.torch_model = self.torch_model or self.model


class Models:
    """The startup model, the shipped ablations and released pairs (by key) and models from the box (by spec),
    shared by all sessions. Box models beyond `keep_models` are evicted least recently used first; a session
    whose model was evicted gets it reloaded (or is told it fell back to the default)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._loaded: OrderedDict[str, Entry] = OrderedDict()
        self._default = self._load_default()

    def default_folder(self) -> Path | None:
        return default_model_folder(self.settings.models_dir)

    def _load_default(self) -> Entry:
        spec = self.settings.model
        folder = Path(spec) if spec and Path(spec).is_dir() else (None if spec else self.default_folder())
        if not spec and folder is None:
            return Entry(random_model(), "RANDOM WEIGHTS: no trained model found under models/; its outputs mean "
                                         "nothing", "random")
        try:
            model = load_model(spec or str(folder))
        except ValueError as e:  # a broken default must not stop the app
            return Entry(random_model(), f"RANDOM WEIGHTS: the default model failed to load ({e})", "random")
        if spec:
            origin = f"CYCLEGAN_MODEL={spec}"
        else:
            origin = f"embedded default model models/{folder.name}"
        return Entry(accelerate(model, self.settings), origin, "embedded", folder, model)

    # what the picker offers
    def ablation_folders(self) -> dict[str, Path]:
        root = self.settings.models_dir / "ablation"
        return {name: root / name for name in ABLATIONS if (root / name / "config.json").is_file()}

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) for the picker: the startup model, the ablations, the released pairs."""
        d = self._default.model
        out = [(f"default: {d.name_A} <-> {d.name_B}", DEFAULT_KEY)]
        out += [(f"ablation: {ABLATIONS[n]}", f"ablation/{n}") for n in self.ablation_folders()]
        out += [(f"released: {label}", f"released/{key}") for key, label in released_pairs()]
        return out

    def allowed(self, spec: str) -> bool:
        box = self.settings.model_box
        if spec == DEFAULT_KEY:
            return True
        if box == "off":
            return False
        if spec in {k for _, k in self.choices()} or spec in self.settings.model_allow:
            return True
        return box == "open"

    def get(self, key: str | None) -> tuple[Entry, str]:
        """(entry, note): the note is "" or a sentence saying the session's model had to be replaced."""
        key = key or DEFAULT_KEY
        if key == DEFAULT_KEY:
            return self._default, ""
        with self._lock:
            entry = self._loaded.get(key)
            if entry is not None:
                self._loaded.move_to_end(key)
                return entry, ""
        try:  # evicted by other sessions' choices: load it again
            return self._loaded[self.load(key)], ""
        except Exception as e:
            return self._default, sentence(f"Your model ({key}) was unloaded to make room for others and could not "
                                           f"be loaded again ({one_line(e).rstrip('.')}), so this is the default "
                                           f"model")

    def load(self, spec: str, progress=None) -> str:
        """Loads (or finds) a model; returns its key. Raises ValueError with a one-line message."""
        spec = (spec or "").strip() or DEFAULT_KEY
        if not self.allowed(spec):
            raise ValueError("this server only offers the models in the list" if self.settings.model_box ==
                             "allowlist" else "this server does not load other models")
        if spec == DEFAULT_KEY:
            return spec
        with self._lock:
            key_lock = self._key_locks.setdefault(spec, threading.Lock())
        with key_lock:   # two visitors choosing the same model load it once
            with self._lock:
                if spec in self._loaded:
                    self._loaded.move_to_end(spec)
                    return spec
            entry = self._build(spec, progress)
            with self._lock:
                self._loaded[spec] = entry
                boxed = [k for k, e in self._loaded.items() if e.kind not in ("ablation", "released")]
                while len(boxed) > self.settings.keep_models:
                    del self._loaded[boxed.pop(0)]
                released = [k for k, e in self._loaded.items() if e.kind == "released"]
                while len(released) > self.settings.keep_models:
                    del self._loaded[released.pop(0)]
        return spec

    def _build(self, spec: str, progress) -> Entry:
        if spec.startswith("ablation/"):
            name = spec.split("/", 1)[1]
            folder = self.ablation_folders().get(name)
            if folder is None:
                raise ValueError(f"no ablation model {name!r} under {self.settings.models_dir / 'ablation'}")
            return Entry(load_model(str(folder)), f"ablation model models/ablation/{name} "
                         f"({ABLATIONS[name]})", "ablation", folder)
        if spec.startswith("released/"):
            name = spec.split("/", 1)[1]
            model, origin = load_released(name, self.settings.released_cache, progress)
            return Entry(accelerate(model, self.settings), origin, "released", None, model)
        model = load_model(spec)
        folder = Path(spec) if Path(spec).is_dir() else None
        return Entry(accelerate(model, self.settings), model.source, "custom", folder, model)


# -- released reference pairs (cyclegan.released downloads, converts and caches them) ---------------------------
def released_pairs() -> list[tuple[str, str]]:
    """(key, "horse <-> zebra") for each released pair of the reference implementation."""
    return released.pairs()


def load_released(name: str, cache: Path, progress=None) -> tuple[CycleGAN, str]:
    """The released pair NAME, downloaded and converted on first use (shared by concurrent callers), cached."""
    pair = released.pair(name)
    model = released.load(name, cache, progress)
    return model, (f"released pair {pair.title} of the reference implementation ({pair.a2b} + {pair.b2a}, "
                   f"converted)")


# -- strings -------------------------------------------------------------------------------------------------------
def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:300]


def sentence(text: str) -> str:
    """One sentence that ends in exactly one full stop."""
    text = text.strip().rstrip(".")
    return text + "."


def names(model: CycleGAN, direction: str) -> dict:
    """The generators and domains of one direction, as the page names them."""
    a, b = model.name_A, model.name_B
    if direction == "AtoB":
        return dict(src=a, dst=b, G="G_AB", F="G_BA", D="D_B")
    return dict(src=b, dst=a, G="G_BA", F="G_AB", D="D_A")


def panel_labels(model: CycleGAN, direction: str) -> dict[str, str]:
    """Short captions (a panel is about 230 px wide on a 1280 px projector) naming this direction's networks."""
    n = names(model, direction)
    G, F, D = n["G"], n["F"], n["D"]
    return {
        "real": f"x · {n['src']}",
        "fake": f"{G}(x) · {n['dst']} · adversarial",
        "rec": f"{F}({G}(x)) · cycle",
        "idt": f"{F}(x) · identity",
        "cycle": f"cycle error |x − {F}({G}(x))|",
        "identity": f"identity error |x − {F}(x)|",
        "realness": f"{D}({G}(x)) · realness per patch",
    }


def sidebar(model: CycleGAN, direction: str) -> str:
    n = names(model, direction)
    a, b = model.name_A, model.name_B
    G, F, D = n["G"], n["F"], n["D"]
    return f"""### What you are looking at
Training has two generators, **G_AB** ({a} → {b}) and **G_BA** ({b} → {a}), and two discriminators, **D_A**
({a}) and **D_B** ({b}). In this direction ({n['src']} → {n['dst']}) **{G}** translates and **{F}** maps back.
Per image the generators minimise six terms, three per direction; the panels show this direction's three:

- **Adversarial** ({G}(x), realness map): {D} scores every 70×70 patch of {G}(x); {G} is pushed to make
  every score 1 ("real").
- **Cycle consistency** ({F}({G}(x)), cycle-error map): translating there and back must return x; the term is
  λ × the mean absolute error.
- **Identity** ({F}(x), identity-error map): {F} fed an image already in its output domain should leave it
  alone; weight λ_identity × λ. It keeps colours from drifting.

Each discriminator has two terms: its scores on real images of its domain should be 1, on translated images 0
(least squares, halved)."""


INTRO = ("## CycleGAN: the cycle-consistency explorer\nDrop an image, pick a model and a direction, and see what "
         "each term of CycleGAN's loss ([Zhu et al. 2017](https://arxiv.org/abs/1703.10593)) looks at.")

HIDDEN = ("If the generators hid information about x in G(x) as signals too faint to see, for F to decode, noise on "
          "G(x) would destroy it and the cycle error would jump. The numbers below give the cycle L1 with and "
          "without the noise. Measured on the shipped photo2sketch models (default and the six ablations, "
          "scripts/hidden_information.py): noise up to 16 grey levels changes their mean cycle L1 by less than 5% "
          "(for some it even falls), so they do not hide information this way (the sketch's colour wash keeps the "
          "colours in plain sight).")

WHY_BOTH = ("The default's data and recipe at a fifth of its steps, each with part of the objective removed "
            "(models/ablation, the paper's Table 4 on photo2sketch). One line under each says what to look for; "
            "the number in its brackets is the model's mean cycle L1 over the seven held-out example photos, and "
            "the figure under the images is this image's, so one photo can rank the models differently.")


def privacy_note(settings: Settings) -> str:
    ttl = settings.cache_ttl_s
    span = (f"{ttl} seconds" if ttl < 120 else f"{ttl / 60:g} minutes" if ttl < 7200 else f"{ttl / 3600:g} hours")
    return sentence(f"Uploads and results are deleted from the server after {span}")


def model_card(entry: Entry, settings: Settings) -> str:
    m = entry.model
    cfg = model_config(m)
    arch = (f"{cfg['netG']} generator, ngf {cfg['ngf']}" +
            (f", {cfg['n_blocks']} residual blocks" if cfg.get("netG") == "resnet" and "n_blocks" in cfg else ""))
    disc = "with discriminators" if m.D_A is not None else "no discriminators (no realness map)"
    return (f"**Model:** {entry.origin}  \nA = **{m.name_A}**, B = **{m.name_B}** · {arch} · {disc} · "
            f"shown at {display_side(m, settings)} px")


def display_side(model: CycleGAN, settings: Settings) -> int:
    """The paper's architecture (about 4x the default's passes per pixel) is shown smaller, so that the first
    image appears within 2 s on 2 cores (bench/app_latency.py); the full-resolution download keeps every pixel."""
    if generator_params(model) > LARGE_MODEL_PARAMS:
        return min(settings.max_side, settings.large_model_side)
    return settings.max_side


def numbers_markdown(ex, model: CycleGAN) -> str:
    """The numbers table: this direction's three terms weighted as the model was trained (the weights come with
    explain's numbers; a switched-off term says so instead of a weight)."""
    n = ex.numbers
    nm = names(model, ex.direction)
    lam = "λ_A" if ex.direction == "AtoB" else "λ_B"
    rows = ["| for this image | value | weighted, in the generator objective |", "| --- | --- | --- |"]
    # weights as the model was trained: 0 = a term switched off in its config (e.g. models/ablation/gan_alone)
    off = "not in this model's objective"

    def row(label: str, value: float, weight: float, weighted: str) -> str:
        return f"| {label} | {value:.4f} | {weighted if weight > 0 else off} |"

    rows.append(row(f"cycle L1, mean abs(x − {nm['F']}({nm['G']}(x)))", n["cycle_l1"], n["cycle_weight"],
                    f"{lam} × cycle = {n['cycle_weight']:g} × {n['cycle_l1']:.4f} = **{n['cycle_term']:.4f}**"))
    rows.append(row(f"identity L1, mean abs(x − {nm['F']}(x))", n["identity_l1"], n["identity_weight"],
                    f"λ_identity × {lam} × identity = {n['lambda_identity']:g} × {n['lambda']:g} × "
                    f"{n['identity_l1']:.4f} = **{n['identity_term']:.4f}**"))
    if "lsgan" not in n:
        rows.append("| LSGAN | no discriminator in this checkpoint | – |")
    else:
        rows.append(row(f"LSGAN, mean ({nm['D']}({nm['G']}(x)) − 1)²", n["lsgan"], n["gan_weight"],
                        f"{n['gan_weight']:g} × **{n['gan_term']:.4f}**"))
    rows.append(f"| sum of these terms | | **{n['generator_objective_this_image']:.4f}** |")
    rows.append(f"| PSNR of the reconstruction | {n['psnr_reconstruction_db']:.2f} dB | |")
    text = "\n".join(rows)
    if "cycle_l1_without_noise" in n:
        text += (f"\n\nWith noise of {n['noise_grey_levels']:g} grey levels on {nm['G']}(x) the cycle L1 is "
                 f"**{n['cycle_l1']:.4f}**; without it, **{n['cycle_l1_without_noise']:.4f}**.")
    text += (f"\n\nImage {ex.size[0]}×{ex.size[1]}"
             + (f" (resized from {ex.original_size[0]}×{ex.original_size[1]})" if ex.size != ex.original_size else "")
             + ". These are this direction's three terms for one image; training adds the other direction's three.")
    return text


COLORBAR_WIDTH = 480   # pixels; shown at about this width, its 9 pt text stays readable on a projector


def error_colorbar() -> np.ndarray:
    ticks = tuple((v, f"{v:g}{'+' if v == render.ERROR_MAX else ''}\n({round(v * 127.5)}/255)")
                  for v in np.linspace(0, render.ERROR_MAX, 6))
    return render.colorbar(*render.ERROR_RANGE, render.ERROR_CMAP, "error per pixel, mean over RGB "
                           "(in brackets: grey levels)", ticks, width=COLORBAR_WIDTH)


def realness_colorbar() -> np.ndarray:
    lo, hi = render.REALNESS_RANGE
    ticks = ((lo, f"{lo:g}\ntranslated"), ((lo + hi) / 2, f"{(lo + hi) / 2:g}"), (hi, f"{hi:g}\nreal"))
    return render.colorbar(lo, hi, render.REALNESS_CMAP, "discriminator's score per patch", ticks,
                           width=COLORBAR_WIDTH)


# -- what the model has seen ---------------------------------------------------------------------------------------
def training_examples(entry: Entry, default: Entry) -> dict[str, list[str]]:
    """{domain name: [image paths]} from the model folder's training_examples/ (the ablations, trained on the
    default's data, show the default's): files named <domain>_*.jpg (as `python -m cyclegan.photo2sketch strip`
    writes them) or in <domain>/."""
    folders = [entry.folder] + ([default.folder] if entry.kind == "ablation" else [])
    for folder in folders:
        root = folder / "training_examples" if folder else None
        if root is None or not root.is_dir():
            continue
        m = entry.model
        images = list_images(root)
        out = {}
        for domain in (m.name_A, m.name_B):   # training_examples/<domain>_*.jpg or training_examples/<domain>/
            found = [p for p in images if p.name.startswith(f"{domain}_") or p.parent.name == domain]
            if found:
                out[domain] = [str(p) for p in found[:8]]
        if out:
            return out
    return {}


def reference_cycle_l1(entry: Entry, direction: str) -> tuple[float, float] | None:
    """(mean, max) of the model's cycle L1 on its held-out images in this direction, from the model folder's
    reference.json (`python -m cyclegan.evaluate --save-reference` writes it), or None."""
    path = entry.folder / "reference.json" if entry.folder else None
    if path is None or not path.is_file():
        return None
    try:
        ref = json.loads(path.read_text())[direction]
        return float(ref["mean"]), float(ref.get("max", ref["mean"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


FAR_ABOVE = 2.0   # the note appears above this many times the held-out mean (and above the held-out maximum)


def unfamiliar_note(entry: Entry, ex) -> str:
    """One line when this image's cycle error is far above what the model reaches on its held-out images."""
    ref = reference_cycle_l1(entry, ex.direction)
    value = ex.numbers.get("cycle_l1_without_noise", ex.numbers.get("cycle_l1"))
    if ref is None or value is None or value <= max(FAR_ABOVE * ref[0], ref[1]):
        return ""
    return sentence(f"⚠️ This image's cycle error ({value:.3f}) is {value / ref[0]:.1f}× the model's mean on its "
                    f"held-out images ({ref[0]:.3f}): it is unlike what the model was trained on, so expect poor "
                    f"results")


# -- examples ----------------------------------------------------------------------------------------------------
def example_rows(examples: Path, model: CycleGAN) -> list[tuple[str, str]]:
    """(path, direction) for images in examples/<domain A name>/ (A -> B) and examples/<domain B name>/ (B -> A):
    only images that suit the model."""
    rows = []
    for domain, direction in ((model.name_A, "AtoB"), (model.name_B, "BtoA")):
        folder = examples / domain
        if domain and folder.is_dir():
            rows += [(str(p), direction) for p in list_images(folder)[:12]]
    return rows


# -- panel files ---------------------------------------------------------------------------------------------------
class PanelFiles:
    """PNG files the app writes and hands to Gradio. Gradio saves arrays to a cache file named after their content
    and rewrites it in place when the same picture is returned twice (G(x) goes out in the first streamed message
    and again in the last), so a browser fetching the first copy could get a truncated image; each picture is
    written here once, atomically, and Gradio copies it into its own cache (which delete_cache empties). The
    folder is made on first use and removed by `close`."""

    def __init__(self, lifetime_s: float):
        self.lifetime_s = lifetime_s
        self._dir: Path | None = None
        self._lock = threading.Lock()

    @property
    def dir(self) -> Path:
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="cyclegan-panels-"))
            return self._dir

    def png(self, image: np.ndarray | None, name: str) -> str | None:
        return None if image is None else str(write_png_once(image, self.dir, name))

    def prune(self, now: float | None = None) -> None:
        if self._dir is None:
            return
        cutoff = (now or time.time()) - self.lifetime_s
        for path in self._dir.glob("*/*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    path.parent.rmdir()
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None


# -- inputs --------------------------------------------------------------------------------------------------------
def upload_source(payload):
    """The uploaded file's path (or the pasted bytes) from the image component's raw payload. The events that read
    the image run with preprocess=False: Gradio would otherwise open the file with PIL itself, so a corrupt,
    empty or huge upload would fail with a bare "Error" (or be decoded before the pixel limit is checked)."""
    if payload is None:
        return None
    if isinstance(payload, str):
        return payload
    if not isinstance(payload, dict):
        payload = payload.model_dump() if hasattr(payload, "model_dump") else dict(payload)
    url = payload.get("url") or ""
    if url.startswith("data:"):
        import base64
        try:
            return base64.b64decode(url.split(",", 1)[1])
        except Exception:
            raise refusal("the pasted image data could not be decoded") from None
    return payload.get("path")


def refusal(message: str) -> gr.Error:
    """A message in the page for a request the app refuses; the server log gets one line, no traceback."""
    message = sentence(message)
    log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False)


def page_error(e: Exception, image) -> gr.Error:
    if isinstance(e, ImageError):
        msg = str(e)
        if isinstance(image, str) and msg.startswith(image):  # not the server's temporary path
            msg = msg[len(image):].lstrip(": ")
        return refusal(f"That file cannot be used: {msg}")
    log.exception("request failed")
    return gr.Error(sentence(f"Processing failed ({type(e).__name__}: {one_line(e)})"), print_exception=False)


# -- the page ------------------------------------------------------------------------------------------------------
CSS = """
.gradio-container { max-width: 100% !important; padding-top: 4px !important; }
#intro h2 { margin: 0 0 2px 0; font-size: 1.25em; }
#intro p { margin: 0; }
.panel img { image-rendering: auto; object-fit: contain; }
#numbers table { font-size: 0.9em; }
.colorbar img { width: auto !important; height: auto !important; max-width: 100%; }
.ablation-caption p { margin: 0; font-size: 0.9em; }
#training-strip .grid-container, #examples .grid-container { grid-template-columns: repeat(auto-fill, 110px) !important;
  grid-template-rows: none !important; grid-auto-rows: 110px !important; }
#full-files { min-height: 0; }
"""


class App:
    """The page's components and handlers for one set of settings."""

    def __init__(self, settings: Settings, models: Models | None = None):
        self.settings = settings
        self.models = models or Models(settings)
        self.panels = PanelFiles(min(600.0, settings.cache_ttl_s))
        self._ablations: dict[str, CycleGAN] | None = None
        self._ablation_lock = threading.Lock()

    # helpers
    def entry(self, key):
        return self.models.get(key)

    def side(self, model: CycleGAN) -> int:
        return display_side(model, self.settings)

    @staticmethod
    def direction_choices(model: CycleGAN) -> list[tuple[str, str]]:
        return [(model.direction_label(d).replace("->", "→"), d) for d in ("AtoB", "BtoA")]

    def direction_radio(self, model: CycleGAN, value: str = "AtoB"):
        return gr.Radio(choices=self.direction_choices(model), value=value)

    def relabel(self, direction, model_key):
        """The panels and the sidebar named after the generators of this direction."""
        return self.labelled(self.entry(model_key)[0].model, direction or "AtoB")

    def labelled(self, model: CycleGAN, direction: str, values: dict | None = None) -> dict:
        """The panels relabelled for this model and direction; with `values`, also their new images (None
        clears a panel)."""
        c = self.c
        out = {}
        for k, label in panel_labels(model, direction).items():
            kw = dict(label=label, visible=model.D_A is not None) if k == "realness" else dict(label=label)
            out[c[k]] = gr.Image(value=values.get(k), **kw) if values is not None else gr.Image(**kw)
        out[c["sidebar"]] = sidebar(model, direction)
        nm = names(model, direction)
        for name in self.models.ablation_folders():
            out[c[f"abl_{name}_fake"]] = gr.Image(label=f"{nm['G']}(x)")
            out[c[f"abl_{name}_rec"]] = gr.Image(label=f"{nm['F']}({nm['G']}(x))")
        return out

    # handlers
    def run_explain(self, image, direction, noise, overlay, model_key, state):
        """Streams G(x) first, then every panel; only the overlay switch changed -> re-renders the last result."""
        c = self.c
        entry, note = self.entry(model_key)
        model = entry.model
        src = upload_source(image)
        if src is None:
            yield {c["status"]: "**Drop, paste or upload an image first.**"}
            return
        request = (src if isinstance(src, str) else hash(src), direction, float(noise or 0), model_key, id(model))
        if state is not None and state[0] == request:
            yield self.complete(state[1], entry, overlay)
            return
        self.panels.prune()
        if torch.cuda.is_available():
            model.to("cuda")
        try:
            steps = explain_steps(model, src, direction, noise=float(noise or 0), max_side=self.side(model),
                                  max_pixels=self.settings.max_pixels)
            ex = next(steps)
            first = {**{c[k]: None for k in ("rec", "idt", "cycle", "identity", "realness", "numbers_json")},
                     c["real"]: self.panels.png(ex.real, "x"), c["fake"]: self.panels.png(ex.fake, "G_x"),
                     c["numbers"]: "*G(x) is ready; computing the reconstruction, identity and maps…*",
                     c["status"]: note}
            yield first
            ex = next(steps)
        except Exception as e:
            raise page_error(e, src) from None
        out = self.complete(ex, entry, overlay)
        out[c["status"]] = " ".join(s for s in (note, unfamiliar_note(entry, ex)) if s)
        out[c["state"]] = (request, ex)
        yield out

    def complete(self, ex, entry: Entry, overlay: bool) -> dict:
        c, p = self.c, self.panels
        cycle = render.heatmap(ex, "cycle_error", overlaid=overlay)
        identity = render.heatmap(ex, "identity_error", overlaid=overlay)
        realness = render.heatmap(ex, "realness", overlaid=overlay)
        real, fake = p.png(ex.real, "x"), p.png(ex.fake, "G_x")
        return {c["real"]: real, c["fake"]: fake, c["rec"]: p.png(ex.rec, "F_G_x"), c["idt"]: p.png(ex.idt, "F_x"),
                c["cycle"]: p.png(cycle, "cycle_error"), c["identity"]: p.png(identity, "identity_error"),
                c["realness"]: p.png(realness, "realness"), c["error_bar"]: p.png(error_colorbar(), "error_scale"),
                c["realness_bar"]: p.png(realness_colorbar() if realness is not None else None, "realness_scale"),
                c["numbers"]: numbers_markdown(ex, entry.model), c["numbers_json"]: ex.numbers,
                c["slider"]: (real, fake), c["sidebar"]: sidebar(entry.model, ex.direction)}

    def choose_model(self, spec, model_key, progress=gr.Progress()):
        """The picker or the box: loads the model (released pairs are downloaded and converted once, with
        progress), then relabels the page for it. On failure the previous model stays."""
        c = self.c
        spec = (spec or "").strip()
        try:
            key = self.models.load(spec or DEFAULT_KEY, progress=progress)
        except Exception as e:
            if not isinstance(e, ValueError):
                log.exception("loading %s failed", spec)
            previous, _ = self.entry(model_key)
            return {c["status"]: sentence(f"⚠️ {one_line(e).rstrip('.')}. Still using {previous.origin}"),
                    c["picker"]: gr.Dropdown(value=model_key if model_key in self.keys() else None)}
        entry, _ = self.entry(key)
        model = entry.model
        return {c["key"]: key, c["status"]: sentence(f"Loaded {entry.origin}"),
                c["card"]: model_card(entry, self.settings),
                c["direction"]: self.direction_radio(model), c["state"]: None,
                c["picker"]: gr.Dropdown(value=key if key in self.keys() else None),
                **self.labelled(model, "AtoB", {}), **self.strip_updates(entry), **self.example_updates(model)}

    def keys(self) -> set[str]:
        return {k for _, k in self.models.choices()}

    # the examples gallery and the training-data strip follow the model
    def example_updates(self, model: CycleGAN) -> dict:
        rows = example_rows(self.settings.examples, model)
        label = (f"Examples for {model.name_A} ↔ {model.name_B} (click one)" if rows
                 else f"No example images for {model.name_A} ↔ {model.name_B}; drop your own")
        return {self.c["examples"]: gr.Gallery(value=[p for p, _ in rows] or None, label=label, visible=True),
                self.c["example_rows"]: rows}

    def strip_updates(self, entry: Entry) -> dict:
        strips = training_examples(entry, self.models.get(DEFAULT_KEY)[0])
        items = [(p, d) for d, paths in strips.items() for p in paths]
        label = ("What the model was trained on: " + ", ".join(f"{len(v)} of its {d} images" for d, v in
                                                                 strips.items())) if items else \
            "This model ships no training examples"
        return {self.c["strip"]: gr.Gallery(value=items or None, label=label)}

    def pick_example(self, rows, evt: gr.SelectData):
        path, direction = rows[evt.index]
        return {self.c["image"]: path, self.c["direction"]: direction}

    def ablation_models(self) -> dict[str, CycleGAN]:
        with self._ablation_lock:
            if self._ablations is None:
                self._ablations = {n: load_model(str(f)) for n, f in self.models.ablation_folders().items()}
            return self._ablations

    def run_compare(self, image, direction):
        """One image through each ablation model: G(x) and F(G(x)) side by side, with the cycle error."""
        c = self.c
        src = upload_source(image)
        if src is None:
            raise refusal("Drop, paste or upload an image first")
        models = self.ablation_models()
        if not models:
            raise refusal("No ablation checkpoints under models/ablation")
        self.panels.prune()
        out = {}
        try:
            results = compare(models, src, direction, max_side=self.settings.large_model_side,
                              max_pixels=self.settings.max_pixels)
            for name, ex in results.items():
                out[c[f"abl_{name}_fake"]] = self.panels.png(ex.fake, f"{name}_G_x")
                out[c[f"abl_{name}_rec"]] = self.panels.png(ex.rec, f"{name}_F_G_x")
                h, w = ex.fake.shape[:2]
                out[c[f"abl_{name}_numbers"]] = (f"cycle L1 {ex.numbers['cycle_l1']:.3f} on this image at {w}x{h} "
                                                  f"px ({ABLATIONS[name]})")
        except Exception as e:
            raise page_error(e, src) from None
        return out

    def full_resolution(self, image, direction, model_key, progress=gr.Progress()):
        """G(x) and F(G(x)) at the upload's own size (tiled, in bounded memory) as PNG downloads."""
        src = upload_source(image)
        if src is None:
            raise refusal("Drop, paste or upload an image first")
        entry, _ = self.entry(model_key)
        model = entry.torch_model                        # tiled inference runs PyTorch's layers
        G, F = model.generators(direction)
        cap = self.settings.long_timeout_s
        start = time.monotonic()
        try:
            img = load_rgb(src, max_pixels=self.settings.max_pixels)
        except ImageError as e:
            raise page_error(e, src) from None
        w, h = img.size

        def step(stage: str, share: float):
            def report(done, total=None):
                frac = done / total if total else done
                if time.monotonic() - start > cap:
                    raise TimeoutError
                progress(share * frac + (0.5 if stage == "reconstruction" else 0.0),
                         desc=f"full resolution {w}×{h}: {stage}")
            return report

        try:
            with torch.inference_mode():
                x = pil_to_tensor(img)
                y = tiled_generate(G, x, progress=step("translation", 0.5))
                fake = tensor_to_uint8(y)
                rec = tensor_to_uint8(tiled_generate(F, y, progress=step("reconstruction", 0.5)))
        except TimeoutError:
            raise refusal(f"The full-resolution job stopped after {cap:g} s, the limit on this server; try a "
                          f"smaller image") from None
        except MemoryError:
            raise refusal("The image is too large for this server's memory") from None
        stem = Path(src).stem if isinstance(src, str) else "image"
        nm = names(model, direction)
        files = [self.panels.png(fake, f"{stem}_{nm['G']}"), self.panels.png(rec, f"{stem}_{nm['F']}_{nm['G']}")]
        return {self.c["full_files"]: files,
                self.c["full_status"]: sentence(f"`{nm['G']}(x)` and `{nm['F']}({nm['G']}(x))` at {w}×{h}, in "
                                                f"{time.monotonic() - start:.1f} s")}

    # -- layout ------------------------------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        s = self.settings
        entry, _ = self.entry(DEFAULT_KEY)
        model = entry.model
        labels = panel_labels(model, "AtoB")
        c: dict = {}
        self.c = c
        ttl = s.cache_ttl_s
        with gr.Blocks(title="CycleGAN cycle-consistency explorer", delete_cache=(min(ttl, 600), ttl)) as demo:
            c["key"] = gr.State(DEFAULT_KEY)
            c["state"] = gr.State(None)
            c["example_rows"] = gr.State(example_rows(s.examples, model))
            with gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=320):
                    gr.Markdown(INTRO, elem_id="intro")
                with gr.Column(scale=2, min_width=240):
                    choices = self.models.choices()
                    c["picker"] = gr.Dropdown(choices=choices, value=DEFAULT_KEY, label="model",
                                              elem_id="model-picker", visible=s.model_box != "off",
                                              interactive=True)
                with gr.Column(scale=2, min_width=240):
                    c["direction"] = gr.Radio(self.direction_choices(model), value="AtoB", label="direction",
                                              elem_id="direction")
            with gr.Row(equal_height=True):
                kw = dict(type="numpy", format="png", interactive=False, elem_classes="panel", height=230,
                          buttons=["download"])
                c["image"] = gr.Image(label="your image (drop, paste or use the webcam)", type="filepath",
                                      sources=["upload", "clipboard", "webcam"], format="png", elem_id="input-image",
                                      height=230)
                c["real"] = gr.Image(label=labels["real"], elem_id="real", **kw)
                c["fake"] = gr.Image(label=labels["fake"], elem_id="fake", **kw)
                c["rec"] = gr.Image(label=labels["rec"], elem_id="rec", **kw)
                c["idt"] = gr.Image(label=labels["idt"], elem_id="idt", **kw)
            c["status"] = gr.Markdown("", elem_id="model-status")
            with gr.Row():
                with gr.Column(scale=3):
                    with gr.Row(equal_height=True):
                        c["cycle"] = gr.Image(label=labels["cycle"], elem_id="cycle-heat", **kw)
                        c["identity"] = gr.Image(label=labels["identity"], elem_id="identity-heat", **kw)
                        c["realness"] = gr.Image(label=labels["realness"], elem_id="realness",
                                                 visible=model.D_A is not None, **kw)
                    with gr.Column():   # stacked: each bar at its own pixel size, its text readable
                        bar = dict(type="numpy", format="png", interactive=False, show_label=False, buttons=[],
                                   elem_classes="colorbar", container=False)
                        c["error_bar"] = gr.Image(label="error scale", elem_id="error-bar", **bar)
                        c["realness_bar"] = gr.Image(label="realness scale", elem_id="realness-bar", **bar)
                    c["overlay"] = gr.Checkbox(False, label="overlay the maps on the image", elem_id="overlay")
                    c["numbers"] = gr.Markdown("", elem_id="numbers")
                    c["numbers_json"] = gr.JSON(label="the numbers (JSON)", visible=False)
                    with gr.Accordion("Hidden information: add noise before the reconstruction", open=False):
                        gr.Markdown(HIDDEN)
                        c["noise"] = gr.Slider(0, 32, value=0, step=1, label="noise on G(x), standard deviation in "
                                               "grey levels (0-255)", elem_id="noise")
                    c["slider"] = gr.ImageSlider(label="real vs translated: drag the handle", type="numpy",
                                                 format="png", interactive=False, elem_id="slider", max_height=360)
                with gr.Column(scale=2, min_width=280):
                    c["card"] = gr.Markdown(model_card(entry, s), elem_id="model-card")
                    with gr.Row(visible=s.model_box == "open"):
                        c["spec"] = gr.Textbox(label="or any model: a local folder or a Hub repo id (user/name"
                                                     "[@revision])", scale=4, elem_id="model-spec")
                        c["load"] = gr.Button("Load", scale=1, elem_id="load-model")
                    c["full"] = gr.Button("Full resolution: translation and reconstruction as PNG at the upload's size",
                                          elem_id="full-resolution")
                    c["full_status"] = gr.Markdown("", elem_id="full-status")
                    c["full_files"] = gr.File(label="full-resolution downloads", file_count="multiple",
                                              elem_id="full-files", interactive=False, height=100)
                    c["sidebar"] = gr.Markdown(sidebar(model, "AtoB"), elem_id="sidebar")
            thumbs = dict(columns=8, height=150, allow_preview=False, object_fit="cover", buttons=[])
            c["strip"] = gr.Gallery(label="", elem_id="training-strip", **thumbs)
            c["examples"] = gr.Gallery(label="", elem_id="examples", **{**thumbs, "height": 270})
            with gr.Accordion("Why both losses? One image through the paper's ablations", open=False,
                              elem_id="why-both"):
                gr.Markdown(WHY_BOTH)
                compare_btn = gr.Button("Compare the ablation models on this image", elem_id="compare")
                ablations = list(self.models.ablation_folders())
                for i in range(0, len(ablations), 3):
                    with gr.Row(equal_height=True):
                        for name in ablations[i:i + 3]:
                            with gr.Column(min_width=300, elem_id=f"ablation-{name}", elem_classes="ablation"):
                                gr.Markdown(f"**{ABLATIONS[name]}**: {ABLATION_HINTS[name]}",
                                            elem_classes="ablation-caption")
                                with gr.Row(equal_height=True):
                                    akw = dict(type="numpy", format="png", interactive=False, height=180,
                                               elem_classes="panel", buttons=["download"])
                                    c[f"abl_{name}_fake"] = gr.Image(label="G_AB(x)", elem_id=f"abl-{name}-fake", **akw)
                                    c[f"abl_{name}_rec"] = gr.Image(label="G_BA(G_AB(x))", elem_id=f"abl-{name}-rec",
                                                                    **akw)
                                c[f"abl_{name}_numbers"] = gr.Markdown("", elem_classes="ablation-caption")
            gr.Markdown(privacy_note(s), elem_id="privacy")

            # events
            explain_outputs = [c[k] for k in ("real", "fake", "rec", "idt", "cycle", "identity", "realness",
                                              "error_bar", "realness_bar", "numbers", "numbers_json", "slider",
                                              "status", "state", "sidebar")]
            explain_inputs = [c[k] for k in ("image", "direction", "noise", "overlay", "key", "state")]
            ev = dict(fn=on_gpu(self.run_explain), inputs=explain_inputs, outputs=explain_outputs, preprocess=False,
                      trigger_mode="always_last", concurrency_id="short", concurrency_limit=s.concurrency)
            gr.on([c["image"].upload, c["direction"].input, c["noise"].release, c["overlay"].input],
                  api_name="explain", **ev)
            compare_outputs = [c[k] for k in c if k.startswith("abl_")]
            relabel = [c[k] for k in ("real", "fake", "rec", "idt", "cycle", "identity", "realness", "sidebar")] + [
                c[k] for k in c if k.startswith("abl_") and not k.endswith("_numbers")]
            choose_outputs = [c[k] for k in ("key", "status", "card", "direction", "state", "picker", "strip",
                                             "examples", "example_rows")] + relabel
            choose = dict(fn=self.choose_model, outputs=choose_outputs, concurrency_id="load",
                          concurrency_limit=s.long_concurrency)
            c["picker"].input(inputs=[c["picker"], c["key"]], api_name="pick_model", **choose)
            gr.on([c["load"].click, c["spec"].submit], inputs=[c["spec"], c["key"]], api_name="load_model", **choose)
            c["direction"].change(self.relabel, [c["direction"], c["key"]], relabel, queue=False,
                                  api_visibility="private")
            c["examples"].select(self.pick_example, [c["example_rows"]], [c["image"], c["direction"]],
                                 api_visibility="private").then(api_visibility="private", **ev)
            compare_btn.click(self.run_compare, [c["image"], c["direction"]], compare_outputs, api_name="compare",
                              preprocess=False, concurrency_id="short")
            c["full"].click(self.full_resolution, [c["image"], c["direction"], c["key"]],
                            [c["full_files"], c["full_status"]], api_name="full_resolution", preprocess=False,
                            concurrency_id="long", concurrency_limit=s.long_concurrency)
            demo.load(lambda: {**self.strip_updates(entry), **self.example_updates(model)},
                      outputs=[c["strip"], c["examples"], c["example_rows"]], api_visibility="private")
        return demo


def build_demo(settings: Settings | None = None) -> gr.Blocks:
    """The page for these settings (default: from the environment). Loads the startup model; starts no server."""
    app = App(settings or Settings.from_env())
    demo = app.build()
    demo.cyclegan_app = app
    return demo


def serve(demo: gr.Blocks, settings: Settings, **launch_kwargs):
    """Queues and launches the demo with the settings' limits; extra keyword arguments go to `launch`."""
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    examples = settings.examples
    return demo.launch(max_file_size=settings.max_file_size, css=CSS, show_error=False,
                       allowed_paths=[str(p) for p in (examples, settings.models_dir) if p.is_dir()], **launch_kwargs)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except ValueError as e:
        sys.exit(f"error: {e}")
    torch.set_num_threads(settings.torch_threads)
    demo = build_demo(settings)
    # `docker stop`, a Space restart and `kill` send SIGTERM; exiting normally runs the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve(demo, settings)
    finally:
        demo.cyclegan_app.panels.close()


if __name__ == "__main__":
    main()
