"""Pictures of the numbers `cyclegan.explain` computes: colour maps, overlays and colour bars, with matplotlib.

    from cyclegan.explain import explain
    from cyclegan.render import heatmap
    ex = explain(model, "horse.jpg", "AtoB")                   # raw float maps, computed once
    heat = heatmap(ex, "cycle_error")                           # HxWx3 uint8, rendered when it is shown
    over = heatmap(ex, "cycle_error", overlaid=True)            # the same map over a grey copy of x

Every map of one kind has one fixed scale, so that two images (or two models) can be compared by colour:
the error maps go from 0 to ERROR_MAX (pixels in [-1, 1], the loss's units; 0.5 = 64 grey levels, larger
errors are clipped), the realness map from 0 ("translated", the LSGAN target of fakes) to 1 ("real").
Titles and labels of colour bars are the caller's (the app's words), not this module's.
"""
from __future__ import annotations

import functools

import numpy as np

ERROR_MAX = 0.5                # the error maps' fixed scale: [0, ERROR_MAX] in the loss's units
ERROR_RANGE = (0.0, ERROR_MAX)
REALNESS_RANGE = (0.0, 1.0)    # LSGAN targets: 0 = translated, 1 = real
ERROR_CMAP, REALNESS_CMAP = "inferno", "viridis"
OVERLAY_ALPHA = 0.6

# name of an Explanation field -> (value range, colour map, the panel it is drawn over)
MAPS = {"cycle_error": (ERROR_RANGE, ERROR_CMAP, "real"),
        "identity_error": (ERROR_RANGE, ERROR_CMAP, "real"),
        "realness": (REALNESS_RANGE, REALNESS_CMAP, "fake")}


@functools.lru_cache(maxsize=8)
def _colormap(name: str):
    from matplotlib import colormaps
    return colormaps[name]


def colorize(values: np.ndarray, lo: float, hi: float, cmap: str) -> np.ndarray:
    """HxW floats -> HxWx3 uint8 through matplotlib colour map `cmap` on the fixed scale [lo, hi]; values
    outside it get the end colours. NaN (no value) is drawn as the low end."""
    t = np.clip((np.nan_to_num(np.asarray(values, dtype=np.float64), nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    return _colormap(cmap)(t, bytes=True)[..., :3]


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """`heat` (HxWx3 uint8) blended with weight `alpha` over a greyscale copy of `image` (HxWx3 uint8)."""
    grey = image.astype(np.float32).mean(-1, keepdims=True)
    return (grey * (1 - alpha) + heat.astype(np.float32) * alpha + 0.5).astype(np.uint8)


def heatmap(ex, name: str, overlaid: bool = False) -> np.ndarray | None:
    """The colour picture of one map of an `Explanation` (`name`: "cycle_error", "identity_error" or
    "realness"), on its fixed scale (MAPS); with `overlaid`, drawn over a grey copy of x (error maps) or of
    G(x) (realness). HxWx3 uint8, or None when the map was not computed (no discriminator, or G(x) only).
    Raises KeyError for another name."""
    (lo, hi), cmap, base = MAPS[name]
    values = getattr(ex, name)
    if values is None:
        return None
    heat = colorize(values, lo, hi, cmap)
    return overlay(getattr(ex, base), heat) if overlaid else heat


@functools.lru_cache(maxsize=16)
def colorbar(lo: float, hi: float, cmap: str, title: str, ticks: tuple = (), width: int = 640) -> np.ndarray:
    """A horizontal colour bar for the scale [lo, hi] of `cmap`, titled `title`, with `ticks` as
    ((value, label), ...) (labels may hold newlines): an HxWx3 uint8 image `width` pixels wide (95 high),
    drawn by matplotlib's Agg canvas (no pyplot, no global backend switch). Cached per scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colorbar import Colorbar
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(width / dpi, 0.95), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.09, 0.52, 0.82, 0.25))
    bar = Colorbar(ax, cmap=_colormap(cmap), norm=Normalize(lo, hi), orientation="horizontal")
    if ticks:
        bar.set_ticks([value for value, _ in ticks], labels=[label for _, label in ticks])
    ax.tick_params(labelsize=8)
    fig.text(0.5, 0.9, title, ha="center", va="center", fontsize=9)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
