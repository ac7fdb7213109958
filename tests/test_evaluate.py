"""The benchmark command on a tiny model, and the shipped checkpoints (default model, ablation) loading strictly."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cyclegan import CycleGAN
from cyclegan.evaluate import (evaluate, evaluate_heldout, format_comparison, format_heldout, format_table, goals_met,
                               load_heldout, load_pairs, scores)

pytest.importorskip("skimage")

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SHIPPED = sorted(p.parent for p in MODELS.rglob("config.json")) if MODELS.is_dir() else []


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    CycleGAN(name_A="photo", name_B="sketch", ngf=4, n_blocks=1, with_discriminators=True, ndf=4).save_pretrained(folder)
    return folder


def test_scores_match_known_values():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 200, (2, 32, 32, 3), dtype=np.uint8)
    same = scores(a, a)
    assert math.isinf(same["psnr"]) and same["ssim"] == pytest.approx(1.0)
    shifted = scores(a + 10, a)  # MSE = 100 / 255^2 everywhere
    assert shifted["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / 100), abs=1e-3)


def test_evaluate_reports_model_and_identity_both_ways(tiny_model):
    model = CycleGAN.from_pretrained(str(tiny_model))
    r = evaluate(model, "photo2sketch", limit=3)
    assert r["n_images"] == 3 and r["size"] == [128, 128]
    f, b = r["directions"]["AtoB"], r["directions"]["BtoA"]
    assert f["label"] == "photo -> sketch" and b["label"] == "sketch -> photo"
    # Identity: the cycle is perfect and both directions compare the same two images.
    assert math.isinf(f["identity"]["cycle"]["psnr"]) and f["identity"]["cycle"]["ssim"] == pytest.approx(1.0)
    assert f["identity"]["translation"]["psnr"] == pytest.approx(b["identity"]["translation"]["psnr"])
    assert 10 < f["identity"]["translation"]["psnr"] < 30
    # An untrained model keeps no structure (SSIM far below doing nothing), and the numbers repeat exactly.
    assert f["model"]["translation"]["ssim"] < f["identity"]["translation"]["ssim"] - 0.2
    assert evaluate(model, "photo2sketch", limit=3) == r
    table = format_table(r)
    assert table.count("\n") == 5 and "| photo -> sketch | G(x) vs sketch(x) |" in table
    comparison = format_comparison([("a", r), ("b", r)])
    assert "identity (baseline)" in comparison and "constant mid-grey (baseline)" in comparison
    # The mid-grey baseline really is a constant image: its PSNR against the photos follows from their MSE.
    photos = load_pairs("photo2sketch", limit=3)[0].astype(np.float64) / 255.0
    mse = ((photos - 128 / 255.0) ** 2).mean(axis=(1, 2, 3))
    expected = float(np.mean(10 * np.log10(1.0 / mse)))
    assert b["grey"]["translation"]["psnr"] == pytest.approx(expected, abs=1e-3)


def test_evaluate_command(tiny_model, tmp_path):
    out = tmp_path / "numbers.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "cyclegan.evaluate", "--model", str(tiny_model), "--limit", "2", "--threads", "1",
           "--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    # The task is the one named after the model's domains (photo, sketch).
    assert "photo2sketch:" in res.stdout and "identity PSNR" in res.stdout and "constant mid-grey" in res.stdout
    assert "| sketch -> photo | F(G(y)) vs y |" in res.stdout
    numbers = json.loads(out.read_text())[str(tiny_model)]
    assert numbers["n_images"] == 2 and numbers["task"] == "photo2sketch"
    # The held-out ordinary photos, one row each and the mean, beside the tiles.
    held = sorted(p.stem for p in (ROOT / "examples" / "photo").glob("*.png"))
    assert sorted(numbers["heldout"]["photos"]) == held and len(held) >= 7
    assert "held-out ordinary photos" in res.stdout and "| **mean** |" in res.stdout
    assert "| grace_hopper (portrait) |" in res.stdout
    assert not (tiny_model / "reference.json").exists()  # written only when asked

    # Two models: one row each. Another task is named explicitly, with a warning about the domain names.
    res = subprocess.run(cmd[:5] + [str(tiny_model), "--limit", "2", "--threads", "1", "--task", "photo2cartoon"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert res.returncode == 0 and "| model |" in res.stdout and res.stdout.count("| ") > 3
    assert "photo2cartoon:" in res.stdout and "warning" in res.stderr

    bad = subprocess.run([sys.executable, "-m", "cyclegan.evaluate", "--model", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert bad.returncode == 2 and "cannot load" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "cyclegan.evaluate", "--task", "nope"], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=300)
    assert bad.returncode == 2 and "unknown task" in bad.stderr


def test_heldout_numbers_per_photo_and_their_mean(tiny_model, tmp_path):
    rng = np.random.default_rng(0)
    for name, (h, w) in (("one", (42, 66)), ("two", (40, 40))):  # 42x66 is cropped to 40x64
        for domain in ("photo", "sketch"):
            (tmp_path / domain).mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(tmp_path / domain / f"{name}.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo" / "lonely.png")  # no truth: skipped
    pairs = load_heldout(tmp_path)
    assert [(n, x.shape) for n, x, _ in pairs] == [("one", (40, 64, 3)), ("two", (40, 40, 3))]
    model = CycleGAN.from_pretrained(str(tiny_model))
    r = evaluate_heldout(model, tmp_path)
    assert sorted(r["photos"]) == ["one", "two"]
    one = r["photos"]["one"]
    x, y = pairs[0][1], pairs[0][2]
    assert one["identity_translation"] == scores(x[None], y[None])
    with torch.no_grad():
        xs = torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1
        l1 = float((xs - model.G_BA(model.G_AB(xs))).abs().mean())
    assert one["cycle_l1"] == pytest.approx(l1, rel=1e-5)
    assert r["mean"]["cycle_l1"] == pytest.approx((one["cycle_l1"] + r["photos"]["two"]["cycle_l1"]) / 2)
    assert r["mean"]["translation"]["psnr"] == pytest.approx(
        (one["translation"]["psnr"] + r["photos"]["two"]["translation"]["psnr"]) / 2)
    # The goals: G beats identity on both metrics, the cycle reaches 20 dB, F(y) beats identity on PSNR.
    good = {"translation": {"psnr": 20.0, "ssim": 0.8}, "identity_translation": {"psnr": 13.0, "ssim": 0.7},
            "cycle": {"psnr": 20.0, "ssim": 0.6}, "backward": {"psnr": 14.0, "ssim": 0.5},
            "identity_backward": {"psnr": 13.0, "ssim": 0.7}}
    assert all(goals_met(good).values())
    bad = {**good, "translation": {"psnr": 20.0, "ssim": 0.6}, "cycle": {"psnr": 19.99, "ssim": 0.9},
           "backward": {"psnr": 13.0, "ssim": 0.9}}
    assert not any(goals_met(bad).values())
    table = format_heldout(r, {"one": "animal"})
    assert "| one (animal) |" in table and "| **mean** |" in table and table.count("\n") == 4
    with pytest.raises(FileNotFoundError, match="no held-out pairs"):
        load_heldout(tmp_path / "photo")


def test_save_reference_writes_the_model_folders_held_out_cycle_figure(tiny_model, tmp_path):
    folder = tmp_path / "model"
    CycleGAN.from_pretrained(str(tiny_model)).save_pretrained(folder)
    res = subprocess.run([sys.executable, "-m", "cyclegan.evaluate", "--model", str(folder), "--limit", "1",
                          "--threads", "1", "--save-reference"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr
    ref = json.loads((folder / "reference.json").read_text())
    r = evaluate_heldout(CycleGAN.from_pretrained(str(folder)))
    assert ref["AtoB"]["per_photo"] == pytest.approx({n: v["cycle_l1"] for n, v in r["photos"].items()})
    assert ref["AtoB"]["mean"] == pytest.approx(r["mean"]["cycle_l1"])
    assert ref["BtoA"]["mean"] == pytest.approx(r["mean"]["cycle_l1_B"])


def test_shipped_reference_and_held_out_table_are_what_the_default_model_scores():
    folder = MODELS / "photo2sketch"
    if not (folder / "model.safetensors").is_file():
        pytest.skip("the default model is not in this checkout")
    torch.set_num_threads(1)
    r = evaluate_heldout(CycleGAN.from_pretrained(str(folder)))
    ref = json.loads((folder / "reference.json").read_text())
    assert ref["AtoB"]["mean"] == pytest.approx(r["mean"]["cycle_l1"], abs=2e-3)
    assert ref["BtoA"]["mean"] == pytest.approx(r["mean"]["cycle_l1_B"], abs=2e-3)
    mean_row = [ln for ln in format_heldout(r).splitlines() if ln.startswith("| **mean** |")][0]
    values = [float(v) for v in mean_row.replace("/", "|").split("|")[2:-2] if v.strip()]
    for doc in (ROOT / "README.md", folder / "README.md"):
        found = [ln for ln in doc.read_text().splitlines() if ln.startswith("| **mean** |")]
        assert found, f"{doc.name} has no held-out mean row"
        got = [float(v) for v in found[0].replace("/", "|").split("|")[2:-2] if v.strip()]
        assert got == pytest.approx(values, abs=0.02), (doc, found[0], mean_row)


def test_supervised_ceiling_script_prints_the_benchmarks_identity_row_beside_its_own(tiny_model):
    res = subprocess.run([sys.executable, "scripts/supervised_ceiling.py", "--steps", "20", "--ngf", "4",
                          "--n-blocks", "1", "--model", str(tiny_model)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr
    photos, sketches, _ = load_pairs("photo2sketch")
    same = scores(sketches, photos)
    assert f"| identity (baseline) | {same['psnr']:.2f} | {same['ssim']:.3f} |" in res.stdout
    assert "| supervised G (20 steps" in res.stdout and f"| {tiny_model} (unpaired) |" in res.stdout


def test_default_model_is_shipped_with_discriminators_and_small():
    folder = MODELS / "photo2sketch"
    if not (folder / "model.safetensors").is_file():
        pytest.skip("the default model is not in this checkout")
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["README.md", "config.json", "model.safetensors", "reference.json", "training_examples"]
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 25 * 2 ** 20
    model = CycleGAN.from_pretrained(str(folder))
    assert model.D_A is not None and model.D_B is not None
    assert (model.name_A, model.name_B) == ("photo", "sketch")


@pytest.mark.parametrize("folder", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_shipped_checkpoints_load_strictly(folder):
    assert not [p for p in folder.iterdir() if p.suffix in (".bin", ".pth", ".pt", ".ckpt", ".pkl")]
    model = CycleGAN.from_pretrained(str(folder))
    state = load_file(str(folder / "model.safetensors"))
    assert set(state) == set(model.state_dict())  # nothing missing, nothing unexpected
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[key]), key
    x = torch.zeros(1, 3, 64, 64)
    assert model.G_AB(x).shape == x.shape and model.G_BA(x).shape == x.shape
    # A file missing one tensor is refused.
    broken = dict(state)
    broken.pop(sorted(broken)[0])
    with pytest.raises(ValueError, match="missing tensors"):
        model.load_weights(broken)


def numbers(line: str) -> list[float]:
    return [float(c) for c in (c.strip() for c in line.strip().strip("|").split("|")[2:])]


def test_readme_and_model_card_numbers_are_what_the_shipped_default_model_scores():
    folder = MODELS / "photo2sketch"
    if not (folder / "model.safetensors").is_file():
        pytest.skip("the default model is not in this checkout")
    torch.set_num_threads(1)
    table = format_table(evaluate(CycleGAN.from_pretrained(str(folder)), "photo2sketch"))
    rows = table.splitlines()[2:]
    for doc in (ROOT / "README.md", folder / "README.md"):
        lines = doc.read_text().splitlines()
        for row in rows:
            key = "|".join(row.split("|")[:3]) + "|"
            found = [ln for ln in lines if ln.startswith(key)]
            assert found, f"{doc.name} has no row {key}"
            # Within noise: the last printed digit may differ between CPUs and torch builds.
            assert numbers(found[0]) == pytest.approx(numbers(row), abs=0.02), (doc, row, found[0])


README_ABLATION_ROWS = {  # models/ablation/NAME: its row label in the README's held-out ablation table
    "cycle_alone": "cycle alone", "gan_alone": "GAN alone", "gan_forward_cycle": "GAN + forward cycle",
    "gan_backward_cycle": "GAN + backward cycle", "full": "full CycleGAN", "full_no_identity": "full without identity"}


@pytest.mark.parametrize("name", sorted(README_ABLATION_ROWS))
def test_readme_and_app_ablation_figures_are_what_the_shipped_ablations_score(name):
    # The README's held-out ablation table and the app's line under each model (its cycle L1 in brackets) are
    # what the checkpoints in models/ablation score: retraining them without re-measuring fails here.
    import app
    folder = MODELS / "ablation" / name
    if not (folder / "model.safetensors").is_file():
        pytest.skip("the ablation models are not in this checkout")
    torch.set_num_threads(1)
    m = evaluate_heldout(CycleGAN.from_pretrained(str(folder)))["mean"]
    want = [m["translation"]["psnr"], m["translation"]["ssim"], m["cycle"]["psnr"], m["cycle"]["ssim"],
            m["cycle_l1"], m["backward"]["psnr"], m["backward"]["ssim"]]
    rows = [ln for ln in (ROOT / "README.md").read_text().splitlines()
            if ln.startswith(f"| {README_ABLATION_ROWS[name]} | ") and ln.count("/") == 3]
    assert len(rows) == 1, rows
    got = [float(v) for v in rows[0].replace("/", "|").split("|")[2:-1] if v.strip()]
    assert got == pytest.approx(want, abs=0.02), (rows[0], want)
    hint = app.ABLATION_HINTS[name]
    assert float(hint[hint.rindex("(") + 1:hint.rindex(")")]) == pytest.approx(m["cycle_l1"], abs=0.006), hint


def test_hidden_information_script_prints_the_explain_cycle_error_at_each_noise(tiny_model, tmp_path):
    from cyclegan.explain import explain

    image = ROOT / "examples" / "photo" / "coffee.png"
    out = tmp_path / "hidden.json"
    res = subprocess.run([sys.executable, "scripts/hidden_information.py", "--models", str(tiny_model), "--images",
                          str(image), "--noise", "0", "8", "--per-image", "--json", str(out)], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr
    got = json.loads(out.read_text())[str(tiny_model)]["coffee"]
    model = CycleGAN.from_pretrained(str(tiny_model))
    for noise in (0.0, 8.0):
        assert got[str(noise)] == pytest.approx(explain(model, image, noise=noise).numbers["cycle_l1"], rel=1e-5)
    assert got["8.0"] != got["0.0"]  # the noise reaches F
    jump = got["8.0"] / got["0.0"]
    assert f"| model | coffee | {got['0.0']:.3f} | {got['8.0']:.3f} | {jump:.2f}x |" in res.stdout
    assert "| model | mean |" in res.stdout


def test_a_mistyped_model_folder_is_reported_at_once_as_missing(tmp_path):
    """`--model models/photo2sktech` was taken for a Hub repo id and retried against huggingface.co (about 25 s,
    then "check your connection"); it is a missing local folder, said at once with no Hub request."""
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    res = subprocess.run([sys.executable, "-m", "cyclegan.evaluate", "--model", "models/photo2sktech"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "does not exist" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_missing_benchmark_photos_are_one_line_naming_what_to_install(tiny_model, monkeypatch, capsys):
    """On a plain install (no scikit-image) evaluate ended in a MissingPhotos traceback."""
    import cyclegan.evaluate as ev
    from cyclegan.photo2sketch import MissingPhotos

    def missing(*args, **kwargs):
        raise MissingPhotos("2 photos are not installed (chelsea, coffee): pip install \"cyclegan[benchmark]\"")

    monkeypatch.setattr(ev, "evaluate", missing)
    assert ev.main(["--model", str(tiny_model), "--limit", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cyclegan[benchmark]" in err
