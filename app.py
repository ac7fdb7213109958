"""The cycle-consistency explorer: `python app.py` (http://127.0.0.1:7860, port from GRADIO_SERVER_PORT).

Only layout lives here; every panel and number comes from `cyclegan.explain.explain_steps`.
Settings (environment): CYCLEGAN_MODEL (folder or Hub repo id[@revision]), CYCLEGAN_MAX_SIDE (512),
CYCLEGAN_MAX_PIXELS (50 million), CYCLEGAN_MAX_FILE_SIZE ("20mb"), CYCLEGAN_CONCURRENCY (1 request at a
time per event), CYCLEGAN_THREADS (torch threads; default: the CPUs this process may use).
"""
from __future__ import annotations

import atexit
import base64
import functools
import hashlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from cyclegan.explain import (ABLATIONS, DEFAULT_MAX_SIDE, Explanation, ablation_models, compare,
                              default_model_path, explain_steps, load_model, random_model)
from cyclegan.backends import with_onnxruntime
from cyclegan.images import DEFAULT_MAX_PIXELS, ImageError, list_images, write_png_once
from cyclegan.model import CycleGAN

try:  # ZeroGPU on Hugging Face Spaces; a no-op decorator everywhere else
    import spaces
    GPU = spaces.GPU
except Exception:  # not installed, or not usable here
    def GPU(fn):
        return fn

ROOT = Path(__file__).resolve().parent
EXAMPLES = Path(os.environ.get("CYCLEGAN_EXAMPLES", ROOT / "examples"))
MAX_SIDE = int(os.environ.get("CYCLEGAN_MAX_SIDE", DEFAULT_MAX_SIDE))
MAX_PIXELS = int(os.environ.get("CYCLEGAN_MAX_PIXELS", DEFAULT_MAX_PIXELS))
MAX_FILE_SIZE = os.environ.get("CYCLEGAN_MAX_FILE_SIZE", "20mb")
CONCURRENCY = int(os.environ.get("CYCLEGAN_CONCURRENCY", "1"))
BACKEND = os.environ.get("CYCLEGAN_BACKEND", "torch")   # or "onnxruntime" (optional: pip install onnxruntime onnx onnxscript)
THREADS = int(os.environ.get("CYCLEGAN_THREADS", "0")) or len(os.sched_getaffinity(0))
torch.set_num_threads(THREADS)
DEFAULT_KEY = "default"


# -- models: the startup one plus a few loaded from the text box, shared by all sessions -------------------------
def accelerated(model: CycleGAN) -> CycleGAN:
    """CYCLEGAN_BACKEND=onnxruntime: the generators run by ONNX Runtime (outputs within 0.01 grey level of
    PyTorch's, see the README); any failure keeps PyTorch and says so in the model's description."""
    if BACKEND != "onnxruntime" or torch.cuda.is_available():
        return model
    try:
        return with_onnxruntime(model, ROOT / ".gradio" / "onnx", THREADS)
    except Exception as e:
        model.source = f"{model.source} (ONNX Runtime unavailable, running PyTorch: {type(e).__name__})"
        return model


class Models:
    def __init__(self, keep: int = 3):
        self._models: OrderedDict[str, tuple[CycleGAN, str]] = OrderedDict()
        self._lock, self._keep = threading.Lock(), keep
        path = default_model_path()
        try:
            model = accelerated(load_model(path) if path else random_model())
        except ValueError as e:  # a broken default must not stop the app
            model = random_model()
            model.source = f"{model.source}. The default model failed to load: {e}"
        self._models[DEFAULT_KEY] = (model, describe_origin(path, model))

    def get(self, key: str) -> tuple[CycleGAN, str]:
        with self._lock:
            return self._models.get(key) or self._models[DEFAULT_KEY]

    def load(self, spec: str) -> str:
        """Loads (or finds) a model; returns its key. Raises ValueError with a readable message."""
        spec = spec.strip()
        if not spec:
            return DEFAULT_KEY
        with self._lock:
            if spec in self._models:
                self._models.move_to_end(spec)
                return spec
        model = accelerated(load_model(spec))
        with self._lock:
            self._models[spec] = (model, describe_origin(spec, model))
            while len(self._models) > self._keep + 1:
                oldest = next(k for k in self._models if k != DEFAULT_KEY)
                del self._models[oldest]
        return spec


def describe_origin(spec: str | None, model: CycleGAN) -> str:
    if spec is None:
        return model.source
    path = Path(spec).resolve()
    if path.is_dir() and path.parent == ROOT / "models":
        return f"embedded default model `models/{path.name}`"
    if spec == os.environ.get("CYCLEGAN_MODEL", "").strip():
        return f"CYCLEGAN_MODEL: {model.source}"
    return model.source


def model_card(model: CycleGAN, origin: str) -> str:
    arch = f"{model.netG} generator, ngf {model.ngf}, {model.n_blocks} {'blocks' if model.netG == 'resnet' else 'levels'}"
    disc = "yes (realness map shown)" if model.D_A is not None else "no (no realness map, no LSGAN number)"
    return (f"**Model in use:** {origin}  \n"
            f"Domains: A = **{model.name_A}**, B = **{model.name_B}** · {arch} · discriminators: {disc} · "
            f"λ_A {model.lambda_A:g}, λ_B {model.lambda_B:g}, λ_identity {model.lambda_identity:g}")


def direction_choices(model: CycleGAN) -> list[tuple[str, str]]:
    return [(model.direction_label(d), d) for d in ("AtoB", "BtoA")]


MODELS = Models()


# -- the input image: its raw upload goes to cyclegan.images (which gives readable errors) ---------------------
def raw_upload(payload):
    """Replaces gr.Image.preprocess on the input: Gradio would open the file with PIL itself, so a corrupt,
    empty or huge upload would fail with a bare "Error" (or be decoded before the pixel limit is checked).
    The path (or the pasted bytes) reaches `load_rgb` instead."""
    if payload is None:
        return None
    if payload.url and payload.url.startswith("data:"):
        try:
            return base64.b64decode(payload.url.split(",", 1)[1])
        except Exception:
            raise gr.Error("the pasted image data could not be decoded") from None
    return payload.path


# -- the handler ------------------------------------------------------------------------------------------------

def numbers_markdown(ex: Explanation, model: CycleGAN) -> str:
    n = ex.numbers
    lam = "λ_A" if ex.direction == "AtoB" else "λ_B"
    rows = [
        "| for this image | value | weighted, in the generator objective |",
        "| --- | --- | --- |",
        f"| cycle L1, mean abs(x − F(G(x))) | {n['cycle_l1']:.4f} | {lam} × cycle = {n['lambda']:g} × "
        f"{n['cycle_l1']:.4f} = **{n['cycle_term']:.4f}** |",
        f"| identity L1, mean abs(x − F(x)) | {n['identity_l1']:.4f} | λ_identity × {lam} × identity = "
        f"{n['lambda_identity']:g} × {n['lambda']:g} × {n['identity_l1']:.4f} = **{n['identity_term']:.4f}** |",
    ]
    if "gan_term" in n:
        rows.append(f"| LSGAN, mean (D(G(x)) − 1)² | {n['gan_term']:.4f} | 1 × **{n['gan_term']:.4f}** |")
    else:
        rows.append("| LSGAN | no discriminator in this checkpoint | – |")
    rows.append(f"| sum of these terms | | **{n['generator_objective_this_image']:.4f}** |")
    rows.append(f"| PSNR of the reconstruction F(G(x)) | {n['psnr_reconstruction_db']:.2f} dB | |")
    text = "\n".join(rows)
    if "cycle_l1_without_noise" in n:
        text += (f"\n\nWith noise of {n['noise_grey_levels']:g} grey levels on G(x) the cycle L1 is "
                 f"**{n['cycle_l1']:.4f}**; without it, **{n['cycle_l1_without_noise']:.4f}**.")
    text += (f"\n\nImage {ex.size[0]}×{ex.size[1]}"
             + (f" (resized from {ex.original_size[0]}×{ex.original_size[1]})" if ex.size != ex.original_size else "")
             + ". These are this direction's three terms for one image; training adds the other direction's "
               "three, averaged over batches.")
    return text


# Panels go to Gradio as PNG files we wrote, never as arrays. Gradio 6.31 saves an array to a cache file named
# after its content and rewrites that file in place every time the same picture is returned: G(x) goes out in
# the first streamed message and again in the last (and the colour bars in every request), so a browser still
# fetching the first copy could get a truncated image. write_png_once writes each picture once, atomically,
# and Gradio copies a file into its cache only once.
PANEL_DIR = Path(tempfile.mkdtemp(prefix="cyclegan-panels-"))
PANEL_LIFETIME_S = 600   # Gradio holds its own copy of each file from the moment the message goes out
atexit.register(shutil.rmtree, PANEL_DIR, ignore_errors=True)


def panel_file(image: np.ndarray | None, name: str) -> str | None:
    return None if image is None else str(write_png_once(image, PANEL_DIR, name))


def prune_panel_files(now: float | None = None) -> None:
    """Removes panel files older than PANEL_LIFETIME_S (Gradio has its own copies by then)."""
    cutoff = (now or time.time()) - PANEL_LIFETIME_S
    for path in PANEL_DIR.glob("*/*.png"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                path.parent.rmdir()
        except OSError:  # already gone, or the folder holds another name
            pass


def outputs_for(ex: Explanation | None, model: CycleGAN, overlay: bool) -> list:
    """The values of OUTPUTS, in order; None where not computed yet."""
    if ex is None:
        return [None] * 12
    real, fake = panel_file(ex.real, "x"), panel_file(ex.fake, "G_x")
    if ex.stage != "complete":
        return [real, fake, None, None, None, None, None, None, None,
                "*G(x) is ready; computing the reconstruction, identity and maps…*", None, None]
    cycle = ex.cycle_overlay if overlay else ex.cycle_heat
    identity = ex.identity_overlay if overlay else ex.identity_heat
    realness = ex.realness_overlay if overlay else ex.realness_heat
    return [real, fake, panel_file(ex.rec, "F_G_x"), panel_file(ex.idt, "F_x"),
            panel_file(cycle, "cycle_error"), panel_file(identity, "identity_error"),
            panel_file(realness, "realness"), panel_file(ex.error_colorbar, "error_scale"),
            panel_file(ex.realness_colorbar, "realness_scale"), numbers_markdown(ex, model), ex.numbers,
            (real, fake)]


@GPU
def run_explain(image, direction, noise, overlay, model_key, state):
    """Streams G(x) first, then every panel. Re-renders from the session's last result when only the overlay
    switch changed."""
    model, _ = MODELS.get(model_key or DEFAULT_KEY)
    if image is None:  # e.g. the direction changed before any image was dropped
        yield *[gr.skip()] * 9, "**Drop, paste or upload an image first.**", *[gr.skip()] * 3
        return
    request = (image if isinstance(image, str) else hash(image), direction, float(noise or 0), model_key)
    if state is not None and state[0] == request:
        yield *outputs_for(state[1], model, overlay), state
        return
    prune_panel_files()
    if torch.cuda.is_available():
        model.to("cuda")
    try:
        steps = explain_steps(model, image, direction, noise=float(noise or 0), max_side=MAX_SIDE,
                              max_pixels=MAX_PIXELS)
        yield *outputs_for(next(steps), model, overlay), gr.skip()
        ex = next(steps)
    except Exception as e:
        raise page_error(e, image) from None
    yield *outputs_for(ex, model, overlay), (request, ex)


def page_error(e: Exception, image) -> gr.Error:
    """A readable message in the page for a failed request; the server goes on serving."""
    if isinstance(e, ImageError):
        msg = str(e)
        if isinstance(image, str) and msg.startswith(image):  # not the server's temporary path
            msg = msg[len(image):].lstrip(": ")
        return gr.Error(f"That file cannot be used: {msg}.")
    return gr.Error(f"Processing failed ({type(e).__name__}: {str(e)[:300]}).")


@functools.lru_cache(maxsize=1)
def shipped_ablations() -> dict:
    return ablation_models()


def run_compare(image, direction):
    """One image through each ablation model: G(x) and F(G(x)) side by side, with the cycle error."""
    if image is None:
        raise gr.Error("Drop, paste or upload an image first.")
    models = shipped_ablations()
    if not models:
        raise gr.Error("No ablation checkpoints under models/ablation.")
    prune_panel_files()
    try:
        results = compare(models, image, direction, max_side=MAX_SIDE, max_pixels=MAX_PIXELS)
    except Exception as e:
        raise page_error(e, image) from None
    items = []
    for name, ex in results.items():
        items += [(panel_file(ex.fake, f"{name}_G_x"), f"{ABLATIONS[name]}: G(x)"),
                  (panel_file(ex.rec, f"{name}_F_G_x"),
                   f"{ABLATIONS[name]}: F(G(x)), cycle L1 {ex.numbers['cycle_l1']:.3f}")]
    return items


def example_fn(image, direction):
    """For the examples gallery (cached on first use): the startup model, no noise, no overlay."""
    out = None
    for out in run_explain(image, direction, 0.0, False, DEFAULT_KEY, None):
        pass
    return out[:-1]


def load_clicked(spec, model_key):
    try:
        key = MODELS.load(spec or "")
    except ValueError as e:
        return (model_key, f"⚠️ {e}. Still using the previous model.", gr.skip(), gr.skip(), gr.skip(), gr.skip())
    model, origin = MODELS.get(key)
    return (key, f"Loaded {spec.strip() or 'the default model'}.", model_card(model, origin),
            gr.Radio(choices=direction_choices(model), value="AtoB"),
            gr.Image(visible=model.D_A is not None), None)


def example_rows(model: CycleGAN) -> list[list]:
    """[[path, direction]] for every image under examples/; B-domain images go B -> A (by folder or name)."""
    if not EXAMPLES.is_dir():
        return []
    name_b = model.name_B.lower()
    rows = []
    for path in list_images(EXAMPLES)[:24]:
        rel = path.relative_to(EXAMPLES)
        words = [p.lower() for p in rel.parts[:-1]] + [rel.stem.lower()]
        is_b = any(w == name_b or w.startswith(name_b) or w in ("b", "testb", "trainb") or w.endswith("_b")
                   for w in words)
        rows.append([str(path), "BtoA" if is_b else "AtoB"])
    return rows


# -- the page -------------------------------------------------------------------------------------------------
INTRO = """# CycleGAN: the cycle-consistency explorer
Drop an image (or paste one, or use the webcam), pick a direction, and see what each term of CycleGAN's loss
([Zhu et al. 2017](https://arxiv.org/abs/1703.10593)) looks at for this image."""

LOSSES = """### What you are looking at
Training has two generators, **G** (A→B) and **F** (B→A), and two discriminators. Per image, the
generators minimise six terms (three per direction; the panels show this direction's three):

- **Adversarial** (G(x), realness map): the discriminator of the target domain scores every 70×70 patch of
  G(x); G is pushed to make every score 1 ("real"). The other direction has the same term for F.
- **Cycle consistency** (F(G(x)), cycle-error map): translating there and back must return x; the term is
  λ × the mean absolute error. Without it nothing ties G(x) to x. Both directions have one.
- **Identity** (F(x), identity-error map): a generator fed an image that is already in its output domain
  should leave it alone; weight λ_identity × λ. It keeps colours from drifting. Both directions have one.

Each **discriminator** has two terms: its scores on real images of its domain should be 1, its scores on
translated images 0 (least squares, halved). They are trained in turn with the generators."""

HIDDEN = ("A reconstruction can be suspiciously good: the generators can hide information about x in G(x) as "
          "signals too faint to see, which F decodes. Add a little noise to G(x) before F and watch the cycle "
          "error jump if that is happening.")

WHY_BOTH = ("Each small model here was trained with the same recipe and budget but part of the objective removed "
            "(models/ablation, the paper's Table 4 on photo2sketch). Without a cycle term G(x) need not keep x's "
            "content; without the adversarial terms it need not look like the other domain; with one cycle only, "
            "the other direction is free. The benchmark table for these models is in the README.")

CSS = """
.panel img { image-rendering: auto; }
#numbers table { font-size: 0.9em; }
"""


def examples_cache_folder(model: CycleGAN, rows: list[list]) -> str:
    """Cached example results are only valid for one model, size limit and set of examples: key the folder."""
    h = hashlib.sha1(repr((model.source, sorted(model.config.items()), MAX_SIDE, rows)).encode())
    for name in ("model.safetensors",):
        f = Path(default_model_path() or "") / name
        if f.is_file():
            h.update(repr((f.stat().st_size, f.stat().st_mtime_ns)).encode())
    for path, _ in rows:
        h.update(repr(Path(path).stat().st_mtime_ns).encode())
    return str(Path(".gradio") / "cached_examples" / h.hexdigest()[:16])


def build() -> gr.Blocks:
    model, origin = MODELS.get(DEFAULT_KEY)
    has_d = model.D_A is not None
    with gr.Blocks(title="CycleGAN cycle-consistency explorer") as demo:
        model_key = gr.State(DEFAULT_KEY)
        last = gr.State(None)
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                image = gr.Image(label="your image x", type="filepath", sources=["upload", "clipboard", "webcam"],
                                 format="png", elem_id="input-image", height=300)
                image.preprocess = raw_upload  # an instance attribute: no subclass (Gradio writes .pyi files)
                direction = gr.Radio(direction_choices(model), value="AtoB", label="direction",
                                     elem_id="direction")
                run = gr.Button("Explain", variant="primary", elem_id="run")
            with gr.Column(scale=2):
                card = gr.Markdown(model_card(model, origin), label="model", elem_id="model-card")
                with gr.Row():
                    spec = gr.Textbox(label="load another model: a local folder or a Hub repo id (optionally "
                                            "@revision); empty = the default", scale=4, elem_id="model-spec")
                    load = gr.Button("Load model", scale=1)
                status = gr.Markdown("", label="status", elem_id="model-status")
                with gr.Accordion("Hidden information: add noise to G(x) before F reconstructs it", open=True):
                    gr.Markdown(HIDDEN)
                    noise = gr.Slider(0, 32, value=0, step=1, label="noise on G(x), standard deviation in grey "
                                                                    "levels (0-255)", elem_id="noise")
                overlay = gr.Checkbox(False, label="overlay the maps on the image", elem_id="overlay")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row(equal_height=True):
                    kw = dict(type="numpy", format="png", interactive=False, elem_classes="panel", height=260)
                    real = gr.Image(label="x · the real image", elem_id="real", **kw)
                    fake = gr.Image(label="G(x) · adversarial term", elem_id="fake", **kw)
                    rec = gr.Image(label="F(G(x)) · cycle term", elem_id="rec", **kw)
                    idt = gr.Image(label="F(x) · identity term", elem_id="idt", **kw)
                with gr.Row(equal_height=True):
                    cycle = gr.Image(label="cycle error |x − F(G(x))|", elem_id="cycle-heat", **kw)
                    identity = gr.Image(label="identity error |x − F(x)|", elem_id="identity-heat", **kw)
                    realness = gr.Image(label="D(G(x)) · realness per patch", elem_id="realness",
                                        visible=has_d, **kw)
                with gr.Row():
                    error_bar = gr.Image(label="error scale (both error maps)", elem_id="error-bar", type="numpy",
                                         format="png", interactive=False, show_label=False, height=100,
                                         buttons=[])  # no toolbar over the bar's title
                    realness_bar = gr.Image(label="realness scale", elem_id="realness-bar", type="numpy",
                                            format="png", interactive=False, show_label=False, height=100,
                                            buttons=[])  # no toolbar over the bar's title
                numbers = gr.Markdown("", label="numbers", elem_id="numbers")
                numbers_json = gr.JSON(label="the numbers (JSON)", visible=False)
                slider = gr.ImageSlider(label="real vs translated: drag the handle", type="numpy", format="png",
                                        interactive=False, elem_id="slider", max_height=380)
            with gr.Column(scale=1, min_width=260):
                gr.Markdown(LOSSES)
        outputs = [real, fake, rec, idt, cycle, identity, realness, error_bar, realness_bar, numbers, numbers_json,
                   slider]
        gr.on([image.upload, run.click, direction.input, noise.release, overlay.input], run_explain,
              inputs=[image, direction, noise, overlay, model_key, last], outputs=outputs + [last],
              api_name="explain", trigger_mode="always_last", concurrency_limit=CONCURRENCY)
        with gr.Accordion("Why both losses? One image through the paper's ablations", open=False):
            gr.Markdown(WHY_BOTH)
            compare_btn = gr.Button("Compare the ablation models on this image", elem_id="compare")
            gallery = gr.Gallery(label="G(x) and F(G(x)) for each objective", columns=4, format="png",
                                 type="numpy", elem_id="ablation-gallery", height="auto")
        compare_btn.click(run_compare, [image, direction], gallery, api_name="compare", concurrency_limit=CONCURRENCY)
        load.click(load_clicked, [spec, model_key], [model_key, status, card, direction, realness, last],
                   api_name="load_model", concurrency_limit=1)
        rows = example_rows(model)
        if rows:
            os.environ["GRADIO_EXAMPLES_CACHE"] = examples_cache_folder(model, rows)
            # Named after their folders (examples/photo, examples/sketch), not the model's domains: a model
            # loaded with CYCLEGAN_MODEL may have other domains than the examples that ship.
            folders = " and ".join(sorted({Path(p).relative_to(EXAMPLES).parent.as_posix() for p, _ in rows} - {"."}))
            gr.Examples(rows, inputs=[image, direction], outputs=outputs, fn=example_fn, cache_examples=True,
                        cache_mode="lazy", label=f"Examples ({folders or 'examples/'}; results of the startup "
                                                  f"model, computed on first click and cached)")
    return demo


demo = build()

if __name__ == "__main__":
    # `docker stop`, a Space restart and `kill` send SIGTERM, which would end the process without running the
    # atexit handlers (the panel folder would stay behind); exiting normally runs them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64).launch(
        max_file_size=MAX_FILE_SIZE, css=CSS, allowed_paths=[str(EXAMPLES)], show_error=False)
