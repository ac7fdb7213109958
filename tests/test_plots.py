"""cyclegan.plots: the loss curves and sample grid of a training run."""
import csv
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from conftest import ROOT
from cyclegan import CycleGAN
from cyclegan.plots import plot_losses, save_sample_grid
from cyclegan.training import LOSS_NAMES


def test_loss_curves_are_a_png_of_the_documented_size(tmp_path):
    path = tmp_path / "losses.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "epoch", "lr", *LOSS_NAMES])
        w.writeheader()
        for step in range(1, 41):
            w.writerow({"step": step, "epoch": 1, "lr": 2e-4, **{k: 1.0 / step for k in LOSS_NAMES}})
    plot_losses(path, tmp_path / "losses.png")
    assert Image.open(tmp_path / "losses.png").size == (1200, 320)


def test_no_rows_no_picture(tmp_path):
    (tmp_path / "losses.csv").write_text("step,epoch,lr," + ",".join(LOSS_NAMES) + "\n")
    plot_losses(tmp_path / "losses.csv", tmp_path / "losses.png")
    assert not (tmp_path / "losses.png").exists()


def test_sample_grid_has_two_rows_of_four_starting_with_the_real_images(tmp_path):
    model = CycleGAN(ngf=8, n_blocks=3).train()
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    save_sample_grid(model, a, b, tmp_path / "grid.png")
    assert model.training, "the model's mode is restored"
    img = np.array(Image.open(tmp_path / "grid.png").convert("RGB"))
    assert img.shape[:2] == (2 * 32, 4 * 32)
    for row, real in ((0, a), (1, b)):
        got = torch.from_numpy(img[row * 32:(row + 1) * 32, :32].copy()).permute(2, 0, 1).float() / 255
        assert (got - real[0].add(1).div(2)).abs().max() <= 1 / 255 + 1e-6


def test_drawing_does_not_switch_the_callers_matplotlib_backend():
    code = ("import matplotlib; matplotlib.use('svg'); import csv, tempfile, pathlib;"
            "from cyclegan.plots import plot_losses; from cyclegan.training import LOSS_NAMES;"
            "d = pathlib.Path(tempfile.mkdtemp()); f = open(d / 'l.csv', 'w', newline='');"
            "w = csv.DictWriter(f, fieldnames=['step', 'epoch', 'lr', *LOSS_NAMES]); w.writeheader();"
            "w.writerow({'step': 1, 'epoch': 1, 'lr': 1, **{k: 1 for k in LOSS_NAMES}}); f.close();"
            "plot_losses(d / 'l.csv', d / 'l.png'); print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "svg"
