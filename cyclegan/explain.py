"""Everything the cycle-consistency explorer shows for one image, computed in one place.

    from cyclegan import CycleGAN
    from cyclegan.explain import explain
    ex = explain(CycleGAN.from_pretrained("models/default"), "horse.jpg", "AtoB")
    ex.fake, ex.rec, ex.idt, ex.cycle_heat, ex.numbers        # HxWx3 uint8 arrays and plain floats

`explain_steps` is the same computation as an iterator: it yields the partly filled `Explanation` after the
first generator pass (G(x) is ready) and the complete one at the end; `explain` runs it to the end. The app
(app.py) and the command line (`python -m cyclegan.translate`) both use it, so they cannot disagree.

For direction A -> B with G = G_AB and F = G_BA (for B -> A the roles swap):
    x          the input, resized so its longest side is at most `max_side`
    G(x)       the translation (what the adversarial term judges)
    F(G(x))    the reconstruction (cycle-consistency term: lambda * |x - F(G(x))|)
    F(x)       F fed an image of its own target domain (identity term: lambda_identity * lambda * |x - F(x)|)
    D(G(x))    the target domain's PatchGAN scores for G(x) (LSGAN term: mean (D(G(x)) - 1)^2), if the
               checkpoint has discriminators
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .images import DEFAULT_MAX_PIXELS, ImageError, load_rgb, pil_to_tensor, tensor_to_uint8
from .model import CycleGAN, check_direction

DEFAULT_MAX_SIDE = 512
MULTIPLE = 4        # the ResNet generator halves the size twice
MIN_SIDE = 32       # smaller canvases are padded up: the generator and the 70x70 PatchGAN need some room
ERROR_MAX = 0.5     # the error heatmaps' fixed scale, in the loss's units (pixels in [-1, 1]): 0.5 = 64 grey levels
REALNESS_RANGE = (0.0, 1.0)   # LSGAN targets: 0 = "translated", 1 = "real"
ERROR_CMAP, REALNESS_CMAP = "inferno", "viridis"
NOISE_SEED = 1234


@dataclass
class Explanation:
    """Every panel (HxWx3 uint8 unless noted) and number for one image; None where not computed (yet)."""
    direction: str
    label: str                          # "horse -> zebra"
    size: tuple[int, int]               # (width, height) of every panel
    original_size: tuple[int, int]      # (width, height) of the image as loaded
    noise: float = 0.0                  # grey levels (std of the Gaussian noise added to G(x) before F)
    stage: str = "translated"           # "translated" (only real and fake so far) or "complete"
    real: np.ndarray | None = None      # x
    fake: np.ndarray | None = None      # G(x)
    rec: np.ndarray | None = None       # F(G(x)) (F(G(x) + noise) when noise > 0)
    idt: np.ndarray | None = None       # F(x)
    cycle_error: np.ndarray | None = None       # HxW float32: |x - F(G(x))| mean over channels
    identity_error: np.ndarray | None = None    # HxW float32: |x - F(x)| mean over channels
    realness: np.ndarray | None = None          # HxW float32: D(G(x)) patch scores, upsampled
    realness_patches: np.ndarray | None = None  # the raw patch scores (30x30 for a 256x256 input)
    cycle_heat: np.ndarray | None = None
    identity_heat: np.ndarray | None = None
    cycle_overlay: np.ndarray | None = None
    identity_overlay: np.ndarray | None = None
    realness_heat: np.ndarray | None = None
    realness_overlay: np.ndarray | None = None
    error_colorbar: np.ndarray | None = None
    realness_colorbar: np.ndarray | None = None
    numbers: dict = field(default_factory=dict)


# -- models ---------------------------------------------------------------------------------------------------
def default_model_path(root: str | Path | None = None) -> str | None:
    """The model the app and the CLI use when none is named: $CYCLEGAN_MODEL, else models/default, else the
    first folder under models/ (sorted) holding a config.json; None when there is none."""
    env = os.environ.get("CYCLEGAN_MODEL", "").strip()
    if env:
        return env
    models = Path(root) if root is not None else Path(__file__).resolve().parents[1] / "models"
    if (models / "default" / "config.json").is_file():
        return str(models / "default")
    if models.is_dir():
        for config in sorted(models.glob("*/config.json")):
            return str(config.parent)
    return None


def random_model(seed: int = 0) -> CycleGAN:
    """A tiny model with random weights, so that the app starts even with no trained model at hand."""
    torch.manual_seed(seed)
    model = CycleGAN(ngf=8, n_blocks=3, ndf=8, with_discriminators=True).eval()
    model.source = "RANDOM WEIGHTS (no trained model found): a tiny untrained model, its outputs mean nothing"
    return model


def load_model(spec: str | None) -> CycleGAN:
    """A local folder, or a Hub repo id with an optional "@revision"; None or "" means `default_model_path()`,
    and the random fallback when there is none. Raises ValueError with a readable message."""
    spec = (spec or "").strip() or default_model_path()
    if spec is None:
        return random_model()
    repo, revision = spec, None
    if not os.path.exists(spec) and "@" in spec:
        repo, revision = spec.rsplit("@", 1)
    if not os.path.exists(repo) and (repo.startswith((".", "/", "~")) or repo.count("/") != 1):
        raise ValueError(f"{spec!r} is neither a local folder nor a Hub repo id like 'user/name'")
    try:
        model = CycleGAN.from_pretrained(repo, revision=revision)
    except Exception as e:  # network, missing files, wrong shapes...: one readable line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"could not load {spec!r}: {msg[:400]}") from None
    return model.eval()


# -- preprocessing ----------------------------------------------------------------------------------------------
def prepare(image, max_side: int | None = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS
            ) -> tuple[Image.Image, tuple[int, int]]:
    """(RGB image with its longest side at most max_side, original (w, h)). `image`: path, bytes, PIL or array.
    Raises ImageError for anything that is not a usable image."""
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            arr = np.clip(arr.astype(np.float64), 0, 255).astype(np.uint8)
        image = Image.fromarray(arr)
    if image is None:
        raise ImageError("no image: drop, paste or upload one first")
    img = load_rgb(image, max_pixels=max_pixels)
    w, h = img.size
    if max_side and max(w, h) > max_side:
        s = max_side / max(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img, (w, h)


def canvas_rules(model: CycleGAN) -> tuple[int, int]:
    """(multiple, min_side): the generator accepts sides that are multiples of `multiple` (4 for the ResNet
    generator's two halvings, 2**n for a U-Net with n halvings) and, with the discriminator, at least `min_side`
    pixels. Read from the model's config (`size_multiple`, `min_side`) when it has them."""
    cfg = getattr(model, "config", None)
    multiple, min_side = getattr(cfg, "size_multiple", None), getattr(cfg, "min_side", None)
    if multiple is None:
        netG = getattr(model, "netG", "resnet")
        depth = getattr(cfg, "unet_depth", None) or getattr(model, "n_blocks", 8)
        multiple = 2 ** depth if netG == "unet" else MULTIPLE
    return int(multiple), max(int(min_side or 0), MIN_SIDE, int(multiple))


def pad_canvas(x: torch.Tensor, multiple: int = MULTIPLE, min_side: int = MIN_SIDE) -> torch.Tensor:
    """Pads NCHW bottom/right to sides that are multiples of `multiple` and at least `min_side`, by reflection
    (by replication where the image is too small to reflect); crop back with [..., :h, :w]. Get `multiple` and
    `min_side` for a model from `canvas_rules(model)`."""
    h, w = x.shape[-2:]
    th = math.ceil(max(h, min_side) / multiple) * multiple
    tw = math.ceil(max(w, min_side) / multiple) * multiple
    if tw > w:
        x = F.pad(x, (0, tw - w, 0, 0), mode="reflect" if tw - w < w else "replicate")
    if th > h:
        x = F.pad(x, (0, 0, 0, th - h), mode="reflect" if th - h < h else "replicate")
    return x


def run_padded(net: torch.nn.Module, x: torch.Tensor, multiple: int, min_side: int) -> torch.Tensor:
    """`net(x)` for NCHW `x` of any height and width: padded by `pad_canvas`, run, cropped back to x's size.
    The one inference path for every image size (the app, translate, evaluate, tiles)."""
    h, w = x.shape[-2:]
    return net(pad_canvas(x, multiple, min_side))[..., :h, :w]


# -- colour maps ---------------------------------------------------------------------------------------------------
# matplotlib's colour maps sampled at 17 points, for when matplotlib (not a runtime requirement) is absent
_ANCHORS = {
    "inferno": [(0, 0, 4), (11, 7, 36), (33, 12, 74), (61, 9, 101), (87, 16, 110), (113, 25, 110), (138, 34, 106),
                (163, 44, 97), (188, 55, 84), (210, 70, 68), (228, 90, 49), (241, 115, 29), (249, 142, 9),
                (252, 172, 17), (249, 203, 53), (242, 234, 105), (252, 255, 164)],
    "viridis": [(68, 1, 84), (72, 24, 106), (71, 45, 123), (66, 64, 134), (59, 82, 139), (51, 99, 141), (44, 114, 142),
                (38, 130, 142), (33, 145, 140), (31, 160, 136), (40, 174, 128), (63, 188, 115), (94, 201, 98),
                (132, 212, 75), (173, 220, 48), (216, 226, 25), (253, 231, 37)],
}


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


@functools.lru_cache(maxsize=4)
def _lut(name: str) -> np.ndarray:
    if _have_matplotlib():
        from matplotlib import colormaps
        return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)
    anchors = np.asarray(_ANCHORS[name], dtype=np.float64)
    t = np.linspace(0, 1, len(anchors))
    return np.stack([np.interp(np.linspace(0, 1, 256), t, anchors[:, c]) for c in range(3)], -1).round().astype(
        np.uint8)


def colorize(values: np.ndarray, lo: float, hi: float, cmap: str) -> np.ndarray:
    """HxW floats -> HxWx3 uint8 on the fixed scale [lo, hi] (values outside are clipped)."""
    idx = np.clip((values - lo) / (hi - lo) * 255 + 0.5, 0, 255).astype(np.uint8)
    return _lut(cmap)[idx]


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The heatmap over a greyscale copy of the image."""
    grey = image.astype(np.float32).mean(-1, keepdims=True)
    return (grey * (1 - alpha) + heat.astype(np.float32) * alpha + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def colorbar(lo: float, hi: float, cmap: str, title: str, ticks: tuple = (), width: int = 640) -> np.ndarray:
    """A labelled horizontal colour bar as an image (rendered once per scale, with matplotlib when installed)."""
    if not _have_matplotlib():
        return _colorbar_pil(lo, hi, cmap, title, ticks, width)
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colorbar import ColorbarBase
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib import colormaps

    dpi = 100
    fig = Figure(figsize=(width / dpi, 0.95), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.09, 0.52, 0.82, 0.25))
    cb = ColorbarBase(ax, cmap=colormaps[cmap], norm=Normalize(lo, hi), orientation="horizontal")
    if ticks:
        cb.set_ticks([t for t, _ in ticks], labels=[s for _, s in ticks])
    ax.tick_params(labelsize=8)
    fig.text(0.5, 0.9, title, ha="center", va="center", fontsize=9)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _colorbar_pil(lo: float, hi: float, cmap: str, title: str, ticks: tuple, width: int) -> np.ndarray:
    from PIL import ImageDraw, ImageFont
    height, x0, x1, y0, y1 = 95, int(width * 0.09), int(width * 0.91), 20, 44
    img = Image.new("RGB", (width, height), "white")
    bar = _lut(cmap)[np.linspace(0, 255, x1 - x0).round().astype(int)]
    img.paste(Image.fromarray(np.repeat(bar[None], y1 - y0, 0)), (x0, y0))
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=11)
    except TypeError:  # Pillow without FreeType sizes
        font = ImageFont.load_default()
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline="black")
    draw.text((width / 2, 9), title, fill="black", font=font, anchor="mm")
    for value, text in ticks:
        x = x0 + (value - lo) / (hi - lo) * (x1 - x0 - 1)
        draw.line((x, y1, x, y1 + 4), fill="black")
        draw.multiline_text((x, y1 + 6), text, fill="black", font=font, anchor="ma", align="center")
    return np.asarray(img)


def error_colorbar() -> np.ndarray:
    g = 127.5
    ticks = tuple((v, f"{v:g}\n({round(v * g)}/255)" if v < ERROR_MAX else f"{v:g}+\n({round(v * g)}/255)")
                  for v in np.linspace(0, ERROR_MAX, 6))
    return colorbar(0.0, ERROR_MAX, ERROR_CMAP, "per-pixel error |x - output|, mean over RGB, "
                    "pixels in [-1, 1] (grey levels in brackets)", ticks)


def realness_colorbar() -> np.ndarray:
    lo, hi = REALNESS_RANGE
    ticks = ((lo, f"{lo:g}\nlooks translated"), ((lo + hi) / 2, f"{(lo + hi) / 2:g}"), (hi, f"{hi:g}\nlooks real"))
    return colorbar(lo, hi, REALNESS_CMAP, "discriminator patch score D(G(x)) (LSGAN targets: 0 fake, 1 real; "
                    "clipped)", ticks)


# -- the computation ------------------------------------------------------------------------------------------
def _model_device(model: CycleGAN) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def explain_steps(model: CycleGAN, image, direction: str = "AtoB", *, noise: float = 0.0,
                  max_side: int | None = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS,
                  full: bool = True) -> Iterator[Explanation]:
    """Yields the Explanation after G(x) (stage "translated"), then, if `full`, the complete one.

    `noise` (grey levels, 0-255 scale) adds Gaussian noise of that standard deviation to G(x) before F
    reconstructs it; the clean cycle error is then reported too (one more F pass)."""
    direction = check_direction(direction)
    img, original_size = prepare(image, max_side, max_pixels)
    G, Fb = model.generators(direction)
    D = model.discriminator_of_target(direction)
    lam = model.lambda_A if direction == "AtoB" else model.lambda_B
    device = _model_device(model)
    w, h = img.size
    ex = Explanation(direction=direction, label=model.direction_label(direction), size=(w, h),
                     original_size=original_size, noise=float(noise))

    def crop(t: torch.Tensor) -> torch.Tensor:
        return t[..., :h, :w]

    # Never yield inside inference_mode: grad mode is thread-local and a consumer (Gradio) may resume this
    # generator on another thread.
    with torch.inference_mode():
        x = pil_to_tensor(img).to(device)
        xp = pad_canvas(x, *canvas_rules(model))
        yp = G(xp)                                          # pass 1: the translation
        ex.real, ex.fake = np.asarray(img).copy(), tensor_to_uint8(crop(yp))
    yield ex
    if not full:
        return
    with torch.inference_mode():
        if noise > 0:
            gen = torch.Generator(device="cpu").manual_seed(NOISE_SEED)
            n = torch.randn(yp.shape, generator=gen).to(device) * (float(noise) / 127.5)
            rp = Fb(yp + n)
        else:
            rp = Fb(yp)                                     # pass 2: the reconstruction
        ip = Fb(xp)                                         # pass 3: identity
        rec, idt = crop(rp), crop(ip)
        cycle_map = (x - rec).abs().mean(1)[0]
        idt_map = (x - idt).abs().mean(1)[0]
        cycle_l1, idt_l1 = cycle_map.mean().item(), idt_map.mean().item()
        mse = (x - rec).pow(2).mean().item() / 4.0          # on the [0, 1] scale
        numbers = {
            "direction": direction,
            "width": w, "height": h,
            "cycle_l1": cycle_l1,
            "identity_l1": idt_l1,
            "lambda": lam,
            "lambda_identity": model.lambda_identity,
            "cycle_term": lam * cycle_l1,
            "identity_term": model.lambda_identity * lam * idt_l1,
            "psnr_reconstruction_db": min(100.0, 10 * math.log10(1.0 / mse)) if mse > 0 else 100.0,
            "noise_grey_levels": float(noise),
        }
        if noise > 0:
            clean_l1 = (x - crop(Fb(yp))).abs().mean().item()
            numbers["cycle_l1_without_noise"] = clean_l1
        if D is not None:
            scores = D(yp)                                   # the target domain's discriminator on G(x)
            numbers["gan_term"] = (scores - 1).pow(2).mean().item()
            numbers["mean_realness"] = scores.mean().item()
            up = F.interpolate(scores, size=yp.shape[-2:], mode="bilinear", align_corners=False)
            ex.realness = crop(up)[0, 0].float().cpu().numpy()
            ex.realness_patches = scores[0, 0].float().cpu().numpy()
        numbers["generator_objective_this_image"] = (numbers["cycle_term"] + numbers["identity_term"]
                                                     + numbers.get("gan_term", 0.0))
        ex.rec, ex.idt = tensor_to_uint8(rec), tensor_to_uint8(idt)
        ex.cycle_error = cycle_map.float().cpu().numpy()
        ex.identity_error = idt_map.float().cpu().numpy()

    ex.cycle_heat = colorize(ex.cycle_error, 0.0, ERROR_MAX, ERROR_CMAP)
    ex.identity_heat = colorize(ex.identity_error, 0.0, ERROR_MAX, ERROR_CMAP)
    ex.cycle_overlay = overlay(ex.real, ex.cycle_heat)
    ex.identity_overlay = overlay(ex.real, ex.identity_heat)
    ex.error_colorbar = error_colorbar()
    if ex.realness is not None:
        ex.realness_heat = colorize(ex.realness, *REALNESS_RANGE, REALNESS_CMAP)
        ex.realness_overlay = overlay(ex.fake, ex.realness_heat)
        ex.realness_colorbar = realness_colorbar()
    ex.numbers = numbers
    ex.stage = "complete"
    yield ex


def explain(model: CycleGAN, image, direction: str = "AtoB", **kwargs) -> Explanation:
    """Every panel and number for one image (see `explain_steps` for the arguments)."""
    ex = None
    for ex in explain_steps(model, image, direction, **kwargs):
        pass
    return ex


# -- the paper's ablations (Table 4), side by side ----------------------------------------------------------------
ABLATIONS = {  # folder under models/ablation -> what the run kept of the objective
    "cycle_alone": "cycle alone",
    "gan_alone": "GAN alone",
    "gan_forward_cycle": "GAN + forward cycle",
    "gan_backward_cycle": "GAN + backward cycle",
    "full_no_identity": "full, no identity",
    "full": "full CycleGAN",
}


def ablation_models(root: str | Path | None = None) -> dict[str, CycleGAN]:
    """The ablation checkpoints shipped under models/ablation/NAME, loaded strictly, in ABLATIONS order."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1] / "models" / "ablation"
    return {name: CycleGAN.from_pretrained(root / name).eval() for name in ABLATIONS
            if (root / name / "config.json").is_file()}


def compare(models: dict[str, CycleGAN], image, direction: str = "AtoB", **kwargs) -> dict[str, Explanation]:
    """The same image through several models (e.g. the ablations), each explained in full."""
    return {name: explain(model, image, direction, **kwargs) for name, model in models.items()}
