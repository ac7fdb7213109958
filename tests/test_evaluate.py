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
from safetensors.torch import load_file

from cyclegan import CycleGAN
from cyclegan.evaluate import evaluate, format_comparison, format_table, load_pairs, scores

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
    assert files == ["README.md", "config.json", "model.safetensors"]
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
