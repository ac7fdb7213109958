"""Pictures of a training run: the per-epoch sample grid and the loss curves.

matplotlib is a runtime dependency (pyproject.toml). The curves are drawn on a `matplotlib.figure.Figure`
with its own Agg canvas, not through pyplot, so drawing them never switches the backend of a program
(a notebook, a GUI) that imports this package.
"""
from __future__ import annotations

import csv
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torchvision.utils import save_image

from .model import CycleGAN


@torch.no_grad()
def save_sample_grid(model: CycleGAN, real_A: torch.Tensor, real_B: torch.Tensor, path: str | Path) -> None:
    """Two rows: real A | G_AB(a) | G_BA(G_AB(a)) | G_BA(a)   and   real B | G_BA(b) | G_AB(G_BA(b)) | G_AB(b)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    a, b = real_A.to(device), real_B.to(device)
    fake_B, fake_A = model.G_AB(a), model.G_BA(b)
    row_A = [a, fake_B, model.G_BA(fake_B), model.G_BA(a)]
    row_B = [b, fake_A, model.G_AB(fake_A), model.G_AB(b)]
    grid = torch.cat([torch.cat(row_A, 3), torch.cat(row_B, 3)], 2).float().cpu()
    save_image(grid.add(1).div(2).clamp(0, 1), str(path))
    model.train(was_training)


def plot_losses(csv_path: str | Path, png_path: str | Path, smooth: int = 25) -> None:
    """Loss curves (moving average over `smooth` steps) from losses.csv, as a PNG of 1200x320 pixels.

    Three panels: the generator total, its six terms, the two discriminator losses, against the step.
    Writes nothing when losses.csv has no rows yet.
    """
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig = Figure(figsize=(15, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    groups = [("generator", ["G_total"]), ("terms", ["gan_AB", "gan_BA", "cycle_A", "cycle_B", "idt_A", "idt_B"]),
              ("discriminators", ["D_A", "D_B"])]
    for ax, (title, names) in zip(axes, groups):
        for name in names:
            values = torch.tensor([float(r[name]) for r in rows])
            k = min(smooth, len(values))
            avg = torch.nn.functional.avg_pool1d(values[None, None], k, 1)[0, 0] if k > 1 else values
            ax.plot(steps[k - 1:], avg.tolist(), label=name)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
