"""cyclegan.explain (the raw panels, maps and numbers for one image), cyclegan.render (their pictures) and
`python -m cyclegan.translate`, on a tiny model."""
from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan import CycleGAN
from cyclegan import render
from cyclegan.explain import MIN_SIDE, Explanation, explain, explain_steps, pad_canvas
from cyclegan.images import ImageError, pil_to_tensor
from cyclegan.losses import cycle_loss, identity_loss, lsgan
from cyclegan.render import ERROR_CMAP, ERROR_MAX, colorize, heatmap


@pytest.fixture(scope="module")
def model() -> CycleGAN:
    torch.manual_seed(0)
    return CycleGAN(name_A="horse", name_B="zebra", ngf=8, n_blocks=3, ndf=8, with_discriminators=True,
                    lambda_A=10.0, lambda_B=7.0, lambda_identity=0.5).eval()


def rand_image(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    arr = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    return Image.fromarray(arr).convert(mode)


@pytest.mark.parametrize("size,expected", [((1, 1), (1, 1)), ((5, 3), (5, 3)), ((37, 21), (37, 21)),
                                           ((64, 64), (64, 64)), ((200, 50), (96, 24)), ((30, 301), (10, 96))])
def test_every_panel_has_the_input_size_and_aspect(model, size, expected):
    ex = explain(model, rand_image(*size), "AtoB", max_side=96)
    w, h = expected
    assert ex.size == (w, h) and ex.original_size == size
    for name in ("real", "fake", "rec", "idt"):
        arr = getattr(ex, name)
        assert arr.shape == (h, w, 3) and arr.dtype == np.uint8, name
    for name in ("cycle_error", "identity_error", "realness"):
        assert getattr(ex, name).shape == (h, w) and getattr(ex, name).dtype == np.float32, name
        for overlaid in (False, True):
            pic = heatmap(ex, name, overlaid=overlaid)
            assert pic.shape == (h, w, 3) and pic.dtype == np.uint8, name


def test_padding_reflects_to_a_multiple_of_four_and_crops_back():
    x = torch.arange(2 * 3 * 37 * 50, dtype=torch.float32).reshape(2, 3, 37, 50)
    p = pad_canvas(x)
    assert p.shape[-2:] == (40, 52) and torch.equal(p[..., :37, :50], x)
    assert torch.equal(p[..., 37, :50], x[..., 35, :])            # reflection, not zeros
    assert pad_canvas(torch.zeros(1, 3, 1, 1)).shape[-2:] == (MIN_SIDE, MIN_SIDE)


def test_numbers_are_the_training_loss_terms(model):
    img = rand_image(64, 64, seed=3)     # no padding: the numbers must equal the loss functions exactly
    for direction, (G, F, D, lam) in {"AtoB": (model.G_AB, model.G_BA, model.D_B, model.lambda_A),
                                       "BtoA": (model.G_BA, model.G_AB, model.D_A, model.lambda_B)}.items():
        ex = explain(model, img, direction)
        n = ex.numbers
        with torch.no_grad():
            x = pil_to_tensor(img)
            fake = G(x)
            cyc, idt = cycle_loss(F(fake), x).item(), identity_loss(F(x), x).item()
            gan = lsgan(D(fake), True).item()
            mse = ((F(fake) - x) / 2).pow(2).mean().item()
        assert n["cycle_l1"] == pytest.approx(cyc, rel=1e-5) and n["identity_l1"] == pytest.approx(idt, rel=1e-5)
        assert n["cycle_term"] == pytest.approx(lam * cyc, rel=1e-5)
        assert n["identity_term"] == pytest.approx(0.5 * lam * idt, rel=1e-5)
        assert n["gan_term"] == pytest.approx(gan, rel=1e-5) and n["lsgan"] == pytest.approx(gan, rel=1e-5)
        assert (n["cycle_weight"], n["identity_weight"], n["gan_weight"]) == (lam, 0.5 * lam, 1.0)
        assert n["generator_objective_this_image"] == pytest.approx(lam * cyc + 0.5 * lam * idt + gan, rel=1e-5)
        assert n["psnr_reconstruction_db"] == pytest.approx(10 * math.log10(1 / mse), rel=1e-4)
        assert ex.realness_patches.shape == (6, 6)           # the PatchGAN map of a 64x64 input
        assert np.allclose(ex.cycle_error.mean(), cyc, rtol=1e-5)
        assert ex.label == ("horse -> zebra" if direction == "AtoB" else "zebra -> horse")


@pytest.mark.parametrize("switches", [dict(use_cycle_A=False, use_cycle_B=False), dict(use_gan=False),
                                      dict(use_cycle_A=False, lambda_identity=0.0)])
def test_switched_off_terms_count_zero(model, switches):
    """An ablation model's numbers weigh the terms as it was trained: a switched-off term is 0, not lambda x L1."""
    cfg = model.config.replace(**switches)
    ablated = CycleGAN(cfg).eval()
    ablated.load_state_dict(model.state_dict())
    img = rand_image(48, 40, seed=4)
    for direction, cycle_on in (("AtoB", cfg.use_cycle_A), ("BtoA", cfg.use_cycle_B)):
        full, n = explain(model, img, direction).numbers, explain(ablated, img, direction).numbers
        assert n["cycle_l1"] == pytest.approx(full["cycle_l1"], rel=1e-6)          # same networks, same images
        assert (n["cycle_term"] == pytest.approx(full["cycle_term"], rel=1e-6)) if cycle_on else (
            n["cycle_term"] == 0.0 and n["cycle_weight"] == 0.0)
        if not cfg.use_gan:
            assert n["gan_term"] == 0.0 and n["gan_weight"] == 0.0 and n["lsgan"] == pytest.approx(full["lsgan"])
        if cfg.lambda_identity == 0:
            assert n["identity_term"] == 0.0 and n["identity_weight"] == 0.0
        assert n["generator_objective_this_image"] == pytest.approx(
            n["cycle_term"] + n["identity_term"] + n.get("gan_term", 0.0), rel=1e-6)


def test_gan_alone_shows_no_cycle_term_in_the_app():
    """models/ablation/gan_alone was trained without cycle terms (its config.json says so): the app's numbers
    must not weigh a cycle term it never had (issue 12)."""
    from conftest import ROOT
    from app import numbers_markdown
    from cyclegan.loading import load_model
    model = load_model(str(ROOT / "models" / "ablation" / "gan_alone"))
    assert not model.config.use_cycle_A and not model.config.use_cycle_B
    for direction in ("AtoB", "BtoA"):
        ex = explain(model, rand_image(64, 48, seed=6), direction)
        n = ex.numbers
        assert n["cycle_l1"] > 0 and n["cycle_term"] == 0.0 and n["cycle_weight"] == 0.0
        assert n["generator_objective_this_image"] == pytest.approx(n["identity_term"] + n.get("gan_term", 0.0))
        table = numbers_markdown(ex, model)
        cycle_row = next(row for row in table.splitlines() if row.startswith("| cycle L1"))
        assert "not in this model's objective" in cycle_row and "×" not in cycle_row, cycle_row


def test_heatmaps_use_one_fixed_scale():
    from matplotlib import colormaps
    lut = colormaps[ERROR_CMAP](np.linspace(0, 1, 256), bytes=True)[:, :3]
    heat = colorize(np.array([[0.0, ERROR_MAX / 2, ERROR_MAX, 10 * ERROR_MAX, -1.0]]), 0.0, ERROR_MAX, ERROR_CMAP)
    assert (heat[0, 0] == lut[0]).all() and (heat[0, 2] == lut[255]).all() and (heat[0, 3] == lut[255]).all()
    assert (heat[0, 4] == lut[0]).all() and np.abs(heat[0, 1].astype(int) - lut[128]).max() <= 8


def test_explanation_holds_raw_results_only(model):
    """Rendering happens on demand (cyclegan.render), not in every request: no pictures of maps, no colour bars."""
    names = {f.name for f in dataclasses.fields(Explanation)}
    assert not any(k in n for n in names for k in ("heat", "overlay", "colorbar"))
    ex = explain(model, rand_image(40, 30), "AtoB")
    assert heatmap(ex, "realness", overlaid=True).shape == (30, 40, 3)
    light = explain(model.without_discriminators(), rand_image(40, 30), "AtoB")
    assert heatmap(light, "realness") is None


def test_overlay_greys_the_image_under_the_map():
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0] = (255, 0, 0)
    heat = np.full((2, 2, 3), 100, np.uint8)
    out = render.overlay(image, heat, alpha=0.5)
    assert (out[0, 0] == 93).all() and (out[1, 1] == 50).all()      # 0.5 * 85 + 0.5 * 100, rounded


def test_colorbar_is_an_image_with_its_title():
    bar = render.colorbar(0.0, 0.5, ERROR_CMAP, "error", ((0.0, "0"), (0.5, "0.5\nhigh")), width=400)
    assert bar.shape == (95, 400, 3) and bar.dtype == np.uint8 and bar.std() > 10


def test_g_of_x_comes_first_then_everything(model):
    steps = explain_steps(model, rand_image(40, 40), "BtoA")
    first = next(steps)
    assert first.stage == "translated" and first.fake is not None and first.rec is None and not first.numbers
    last = next(steps)
    assert last.stage == "complete" and last.rec is not None
    assert list(steps) == []
    assert len(list(explain_steps(model, rand_image(40, 40), "AtoB", full=False))) == 1


def test_noise_on_g_of_x_changes_only_the_reconstruction(model):
    img = rand_image(48, 48, seed=5)
    clean = explain(model, img, "AtoB")
    noisy = explain(model, img, "AtoB", noise=16)
    assert np.array_equal(clean.fake, noisy.fake) and np.array_equal(clean.idt, noisy.idt)
    assert not np.array_equal(clean.rec, noisy.rec)
    assert noisy.numbers["cycle_l1_without_noise"] == pytest.approx(clean.numbers["cycle_l1"], rel=1e-5)
    assert noisy.numbers["cycle_l1"] != pytest.approx(clean.numbers["cycle_l1"], rel=1e-6)


def test_no_discriminator_no_realness(model):
    light = model.without_discriminators()
    ex = explain(light, rand_image(40, 40), "AtoB")
    assert ex.realness is None and ex.realness_patches is None and "gan_term" not in ex.numbers
    assert ex.numbers["generator_objective_this_image"] == pytest.approx(
        ex.numbers["cycle_term"] + ex.numbers["identity_term"])


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_awkward_inputs(model, tmp_path):
    rotated = rand_image(60, 40)
    exif = rotated.getexif()
    exif[0x0112] = 6                                                   # rotate 90 degrees when shown
    cases = {
        "exif.jpg": (_encode(rotated, "JPEG", exif=exif), (40, 60)),
        "grey.png": (_encode(rand_image(30, 20, "L"), "PNG"), (30, 20)),
        "rgba.png": (_encode(rand_image(30, 20, "RGBA"), "PNG"), (30, 20)),
        "palette.gif": (_encode(rand_image(30, 20, "P"), "GIF"), (30, 20)),
        "cmyk.jpg": (_encode(rand_image(30, 20, "CMYK"), "JPEG"), (30, 20)),
        "deep.png": (_encode(Image.fromarray(np.full((20, 30), 40000, np.uint16)), "PNG"), (30, 20)),
        "anim.gif": (_encode(rand_image(30, 20, "P"), "GIF", save_all=True,
                             append_images=[rand_image(30, 20, "P", seed=1)]), (30, 20)),
        "phone.heic": (_encode(rand_image(30, 20), "HEIF"), (30, 20)),      # iPhone cameras (pillow-heif)
        "phone.avif": (_encode(rand_image(30, 20), "AVIF"), (30, 20)),
        "phone.webp": (_encode(rand_image(30, 20), "WEBP"), (30, 20)),
    }
    for name, (data, (w, h)) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        ex = explain(model, str(path), "AtoB")
        assert ex.fake.shape == (h, w, 3) and ex.rec.shape == (h, w, 3), name


@pytest.mark.parametrize("data,message", [(b"", "empty"), (b"hello, not an image", "not an image"),
                                          (None, "no image")])
def test_bad_inputs_raise_readable_errors(model, data, message):
    with pytest.raises(ImageError, match=message):
        explain(model, data, "AtoB")


def test_truncated_and_too_large(model):
    png = _encode(rand_image(64, 64), "PNG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        explain(model, png[: len(png) // 2], "AtoB")
    with pytest.raises(ImageError, match="more than the limit"):
        explain(model, png, "AtoB", max_pixels=1000)


def test_onnxruntime_option_matches_pytorch(model, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from cyclegan.backends import with_onnxruntime
    fast = with_onnxruntime(model, tmp_path)
    assert type(model.G_AB).__name__ == "ResnetGenerator"             # the original keeps its generators
    img = rand_image(53, 37, seed=9)                                  # not the export size: dynamic axes
    a, b = explain(model, img, "BtoA"), explain(fast, img, "BtoA")
    for name in ("fake", "rec", "idt"):
        assert np.abs(getattr(a, name).astype(int) - getattr(b, name)).mean() < 0.05, name
    assert b.numbers["cycle_l1"] == pytest.approx(a.numbers["cycle_l1"], abs=1e-4)


def test_compare_explains_one_image_through_each_shipped_ablation(tmp_path):
    from conftest import ROOT
    from cyclegan.explain import compare
    from cyclegan.loading import load_model
    folders = sorted(p.parent for p in (ROOT / "models" / "ablation").glob("*/config.json"))
    assert {f.name for f in folders} >= {"cycle_alone", "gan_alone"}
    models = {f.name: load_model(str(f)) for f in folders}
    img = Image.fromarray((np.random.default_rng(0).random((40, 60, 3)) * 255).astype(np.uint8))
    results = compare(models, img, "AtoB")
    assert list(results) == list(models)
    for ex in results.values():
        assert ex.fake.shape == ex.rec.shape == (40, 60, 3)
    # different objectives give different translations of the same image
    assert not np.array_equal(results["cycle_alone"].fake, results["gan_alone"].fake)
    # the same G(x) and F(G(x)) as the full explanation, from two passes per model
    for name in ("cycle_alone", "gan_alone"):
        full = explain(models[name], img, "AtoB")
        assert np.array_equal(results[name].fake, full.fake) and np.array_equal(results[name].rec, full.rec)
        assert results[name].numbers["cycle_l1"] == pytest.approx(full.numbers["cycle_l1"], abs=1e-6)
        assert results[name].idt is None and results[name].realness is None   # nothing else computed
