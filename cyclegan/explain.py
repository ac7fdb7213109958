"""What the cycle-consistency explorer computes for one image: raw arrays and numbers, nothing drawn.

    from cyclegan.loading import load_model
    from cyclegan.explain import explain
    ex = explain(load_model("models/default"), "horse.jpg", "AtoB")
    ex.fake, ex.rec, ex.idt              # HxWx3 uint8: G(x), F(G(x)), F(x)
    ex.cycle_error, ex.realness          # HxW float32 maps (cyclegan.render draws them when they are shown)
    ex.numbers                           # plain floats: this image's loss terms, weighted as in training
                                         # (cyclegan.losses.direction_terms with the model's config)

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
Any image size works: every pass runs on x padded (by reflection) to what the generator accepts
(`canvas_rules`: multiples of 4 for the ResNet generator, of 2**n for a U-Net with n halvings) and is cropped back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as nnf
from PIL import Image

from .images import DEFAULT_MAX_PIXELS, ImageError, load_rgb, pil_to_tensor, tensor_to_uint8
from .losses import DIRECTION_TERMS, direction_terms, lsgan, term_weights
from .model import CycleGAN, check_direction

DEFAULT_MAX_SIDE = 512
MULTIPLE = 4        # the ResNet generator halves the size twice
MIN_SIDE = 32       # smaller canvases are padded up: the generator and the 70x70 PatchGAN need some room
NOISE_SEED = 1234


@dataclass
class Explanation:
    """The raw results for one image; None where not computed (yet). Images are HxWx3 uint8, maps HxW float32
    aligned with them (draw them with `cyclegan.render.heatmap`)."""
    direction: str
    label: str                          # "horse -> zebra"
    size: tuple[int, int]               # (width, height) of every panel
    original_size: tuple[int, int]      # (width, height) of the image as loaded
    noise: float = 0.0                  # grey levels (std of the Gaussian noise added to G(x) before F)
    stage: str = "translated"           # "translated" (only real and fake so far), "complete" or "compared"
    real: np.ndarray | None = None      # x
    fake: np.ndarray | None = None      # G(x)
    rec: np.ndarray | None = None       # F(G(x)) (F(G(x) + noise) when noise > 0)
    idt: np.ndarray | None = None       # F(x)
    cycle_error: np.ndarray | None = None       # |x - F(G(x))|, mean over channels, pixels in [-1, 1]
    identity_error: np.ndarray | None = None    # |x - F(x)|, the same units
    realness: np.ndarray | None = None          # D(G(x)) patch scores, upsampled to the image (LSGAN: 1 = real)
    realness_patches: np.ndarray | None = None  # the raw patch scores (30x30 for a 256x256 input)
    numbers: dict = field(default_factory=dict)


# -- padding: any image size through any generator -------------------------------------------------------
def canvas_rules(model: CycleGAN) -> tuple[int, int]:
    """(multiple, min_side) in pixels for `pad_canvas`: the generator accepts sides that are multiples of
    `multiple` (`CycleGANConfig.size_multiple`: 4 for the ResNet generator's two halvings, 2**unet_depth for a
    U-Net), and the canvas is at least `min_side` (the config's smallest side the generator and discriminator
    accept, and never under MIN_SIDE)."""
    cfg = model.config
    return cfg.size_multiple, max(cfg.min_side, MIN_SIDE)


def pad_canvas(x: torch.Tensor, multiple: int = MULTIPLE, min_side: int = MIN_SIDE) -> torch.Tensor:
    """Pads NCHW bottom/right to sides that are multiples of `multiple` and at least `min_side`, by reflection
    (by replication where the image is too small to reflect); crop back with [..., :h, :w]. Get `multiple` and
    `min_side` for a model from `canvas_rules(model)`."""
    h, w = x.shape[-2:]
    th = math.ceil(max(h, min_side) / multiple) * multiple
    tw = math.ceil(max(w, min_side) / multiple) * multiple
    if tw > w:
        x = nnf.pad(x, (0, tw - w, 0, 0), mode="reflect" if tw - w < w else "replicate")
    if th > h:
        x = nnf.pad(x, (0, 0, 0, th - h), mode="reflect" if th - h < h else "replicate")
    return x


def run_padded(net: torch.nn.Module, x: torch.Tensor, multiple: int, min_side: int) -> torch.Tensor:
    """`net(x)` for NCHW `x` of any height and width: padded by `pad_canvas`, run, cropped back to x's size.
    The one inference path for every image size (the app, translate, evaluate, tiles)."""
    h, w = x.shape[-2:]
    return net(pad_canvas(x, multiple, min_side))[..., :h, :w]


# -- preprocessing ----------------------------------------------------------------------------------------------
def load_input(image, max_side: int | None = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS
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


# -- the computation ------------------------------------------------------------------------------------------
def psnr_db(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB between two images with pixels in [-1, 1] (computed on the [0, 1] scale), capped at 100."""
    mse = (x - y).pow(2).mean().item() / 4.0
    return min(100.0, 10 * math.log10(1.0 / mse)) if mse > 0 else 100.0


def _model_device(model: CycleGAN) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def explain_steps(model: CycleGAN, image, direction: str = "AtoB", *, noise: float = 0.0,
                  max_side: int | None = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS,
                  full: bool = True) -> Iterator[Explanation]:
    """Yields the Explanation after G(x) (stage "translated"), then, if `full`, the complete one.

    `image`: a path, bytes, PIL image or HxWx3 array (see `load_input`); `max_side` (pixels, None: keep the
    size) and `max_pixels` limit it. `noise` (grey levels, 0-255 scale) adds Gaussian noise of that standard
    deviation to G(x) before F reconstructs it; the clean cycle error is then reported too (one more F pass).
    `full=False` stops after G(x) (one generator pass). Runs on the model's device.
    Raises ImageError for an unusable image, ValueError for an unknown direction; running out of memory
    (MemoryError, torch.OutOfMemoryError) is the caller's to report."""
    direction = check_direction(direction)
    img, original_size = load_input(image, max_side, max_pixels)
    G, F = model.generators(direction)
    D = model.discriminator_of_target(direction)
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
            rp = F(yp + n)
        else:
            rp = F(yp)                                     # pass 2: the reconstruction
        ip = F(xp)                                         # pass 3: identity
        rec, idt = crop(rp), crop(ip)
        cycle_map = (x - rec).abs().mean(1)[0]
        idt_map = (x - idt).abs().mean(1)[0]
        scores = D(yp) if D is not None else None           # the target domain's discriminator on G(x)
        # this direction's three generator terms, weighted and switched as the model was trained (one objective:
        # cyclegan.losses, which the Trainer calls too)
        cfg = model.config
        gan_name, cycle_name, idt_name = DIRECTION_TERMS[direction]
        weights = term_weights(cfg)
        terms = {k: v.item() for k, v in direction_terms(cfg, direction, x, rec=rec, idt=idt,
                                                          fake_scores=scores).items()}
        numbers = {
            "direction": direction,
            "width": w, "height": h,
            "cycle_l1": cycle_map.mean().item(),            # unweighted: mean |x - F(G(x))|
            "identity_l1": idt_map.mean().item(),           # unweighted: mean |x - F(x)|
            "lambda": cfg.lambda_A if direction == "AtoB" else cfg.lambda_B,
            "lambda_identity": cfg.lambda_identity,
            "cycle_weight": weights[cycle_name],            # 0.0: not in this model's objective
            "identity_weight": weights[idt_name],
            "gan_weight": weights[gan_name],
            "cycle_term": terms[cycle_name],
            "identity_term": terms[idt_name],
            "psnr_reconstruction_db": psnr_db(x, rec),
            "noise_grey_levels": float(noise),
        }
        if noise > 0:
            numbers["cycle_l1_without_noise"] = (x - crop(F(yp))).abs().mean().item()
        if scores is not None:
            numbers["lsgan"] = lsgan(scores.float(), True).item()   # unweighted: mean (D(G(x)) - 1)^2
            numbers["gan_term"] = terms[gan_name]
            numbers["mean_realness"] = scores.mean().item()
            up = nnf.interpolate(scores, size=yp.shape[-2:], mode="bilinear", align_corners=False)
            ex.realness = crop(up)[0, 0].float().cpu().numpy()
            ex.realness_patches = scores[0, 0].float().cpu().numpy()
        numbers["generator_objective_this_image"] = sum(terms.values())
        ex.rec, ex.idt = tensor_to_uint8(rec), tensor_to_uint8(idt)
        ex.cycle_error = cycle_map.float().cpu().numpy()
        ex.identity_error = idt_map.float().cpu().numpy()
    ex.numbers = numbers
    ex.stage = "complete"
    yield ex


def explain(model: CycleGAN, image, direction: str = "AtoB", **kwargs) -> Explanation:
    """Every panel, map and number for one image (see `explain_steps` for the arguments)."""
    ex = None
    for ex in explain_steps(model, image, direction, **kwargs):
        pass
    return ex


def compare(models: dict[str, CycleGAN], image, direction: str = "AtoB", *,
            max_side: int | None = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Explanation]:
    """The same image through several models (e.g. the paper's ablations, Table 4): for each, G(x), F(G(x)) and
    the cycle error, nothing else (two generator passes per model, where `explain` runs three and the
    discriminator). The image is read and resized once (see `load_input`).

    Returns {name: Explanation} in the order of `models`, each with `real`, `fake`, `rec` (HxWx3 uint8),
    `cycle_error` (HxW, pixels in [-1, 1]) and numbers "cycle_l1" (mean |x - F(G(x))|) and
    "psnr_reconstruction_db"; stage "compared". Raises ImageError for an unusable image, ValueError for an
    unknown direction."""
    direction = check_direction(direction)
    img, original_size = load_input(image, max_side, max_pixels)
    w, h = img.size
    out = {}
    with torch.inference_mode():
        x_cpu = pil_to_tensor(img)
        for name, model in models.items():
            G, F = model.generators(direction)
            x = x_cpu.to(_model_device(model))
            yp = G(pad_canvas(x, *canvas_rules(model)))
            rec = F(yp)[..., :h, :w]
            cycle_map = (x - rec).abs().mean(1)[0]
            out[name] = Explanation(
                direction=direction, label=model.direction_label(direction), size=(w, h),
                original_size=original_size, stage="compared", real=np.asarray(img).copy(),
                fake=tensor_to_uint8(yp[..., :h, :w]), rec=tensor_to_uint8(rec),
                cycle_error=cycle_map.float().cpu().numpy(),
                numbers={"cycle_l1": cycle_map.mean().item(),
                         "psnr_reconstruction_db": psnr_db(x, rec)})
    return out
