"""Generators over images of any size, in memory bounded by the tile size, with whole-image results.

    from cyclegan.tiled import generate
    y = generate(model.G_AB, x, tile=512)      # x: 1x3xHxW in [-1, 1], any H and W; y: the same shape

Cutting a photo into tiles and translating each one does not reproduce the whole-image translation: instance
normalisation (no affine parameters, no running statistics: `cyclegan.networks.instance_norm`) divides by the
mean and standard deviation of the whole image, so each tile would be normalised by its own and the seams show.
Here the network is run layer by layer instead. Every convolution is one pass over a grid of output tiles;
each tile reads the input region it depends on (the tile plus the halo its kernel reaches, with the layer's own
reflection or zero padding at the image border), so every output pixel is computed from exactly the inputs the
whole-image convolution uses. The pass also accumulates each output channel's sum and sum of squares (float64)
over all tiles, which gives the instance-norm statistics of the whole image before any tile is normalised;
normalisation, activations, the ResNet residual sums and the U-Net skip concatenations are applied on the fly
when the next pass reads its input. The output therefore equals `net(x)` up to float rounding (the order of the
additions differs), which `tests/test_tiled.py` checks for both architectures.

Intermediate activations live in RAM up to `max_ram` bytes and in unlinked temporary files beyond that (read
and written with pread/pwrite, so they sit in the page cache and never count against the process's memory).
The two full-resolution convolutions of the ResNet generator (the first 7x7 and the last transposed one) are
recomputed instead of stored: they are about 4% of the arithmetic and would be the two largest tensors
(64 x H x W floats each with the paper's architecture, 6 GB for a 6000x4000 photo). Peak memory is the input
and output tensors plus a few tiles (see the README's full-resolution section for measured figures).

Supported: `ResnetGenerator` (so the reference implementation's released generators too) and `UnetGenerator`
from `cyclegan.networks`, in inference (dropout off). Another module raises TypeError naming the layer.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .networks import PatchDiscriminator, ResnetBlock, ResnetGenerator, UnetBlock, UnetGenerator

DEFAULT_TILE = 512              # tile side in input pixels (deeper layers use proportionally smaller tiles)
DEFAULT_MAX_RAM = 1 << 30       # bytes of intermediate activations kept in RAM before spilling to disk
MIN_TILE = 16                   # smallest tile side at any depth


# -- sizes ----------------------------------------------------------------------------------------------------
def size_multiple(net: nn.Module) -> int:
    """The number every input side must be a multiple of: 4 for the ResNet generator (two stride-2 convs),
    2**num_downs for the U-Net. Raises TypeError for other modules."""
    if isinstance(net, ResnetGenerator):
        return 2 ** sum(1 for m in net.model if isinstance(m, nn.Conv2d) and m.stride[0] == 2)
    if isinstance(net, UnetGenerator):
        return 2 ** sum(1 for m in net.modules() if isinstance(m, UnetBlock))
    raise TypeError(f"tiled inference supports ResnetGenerator and UnetGenerator, not {type(net).__name__}")


def min_side(net: nn.Module) -> int:
    """The smallest input side `generate` pads to: the multiple, and at least 8 for the ResNet (whose 1/4
    resolution layers reflect-pad by 1, which needs 2 pixels there)."""
    return max(size_multiple(net), 8)


# -- storage of whole activations ---------------------------------------------------------------------------------
class _Store:
    """A CxHxW float32 activation, in RAM (a tensor) or in an unlinked temporary file (HxWxC rows)."""

    def __init__(self, c: int, h: int, w: int, ram: bool, workdir: str | None):
        self.c, self.h, self.w = c, h, w
        self.nbytes = 4 * c * h * w
        self.ram = ram
        if ram:
            self.tensor = torch.empty(1, c, h, w)
        else:
            self.file = tempfile.TemporaryFile(dir=workdir, prefix="cyclegan-tiled-")
            self.file.truncate(self.nbytes)
            self.fd = self.file.fileno()

    def read(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        if self.ram:
            return self.tensor[:, :, r0:r1, c0:c1]
        buf = np.empty((r1 - r0, c1 - c0, self.c), dtype=np.float32)
        row = (c1 - c0) * self.c * 4
        for i in range(r1 - r0):
            offset = ((r0 + i) * self.w + c0) * self.c * 4
            view = memoryview(buf[i]).cast("B")
            got = 0
            while got < row:
                n = os.preadv(self.fd, [view[got:]], offset + got)
                if n <= 0:
                    raise OSError(f"short read from the tiled inference's temporary file ({got} of {row} bytes)")
                got += n
        return torch.from_numpy(buf).permute(2, 0, 1).unsqueeze(0)

    def write(self, r0: int, c0: int, t: torch.Tensor) -> None:
        if self.ram:
            self.tensor[:, :, r0:r0 + t.shape[2], c0:c0 + t.shape[3]] = t
            return
        rows = t[0].permute(1, 2, 0).contiguous().numpy()
        for i in range(rows.shape[0]):
            data = memoryview(rows[i]).cast("B")
            offset = ((r0 + i) * self.w + c0) * self.c * 4
            done = 0
            while done < len(data):
                done += os.pwrite(self.fd, data[done:], offset + done)

    def close(self) -> None:
        if self.ram:
            self.tensor = None
        else:
            self.file.close()


# -- lazy expressions over whole activations ------------------------------------------------------------------
class _Expr:
    """A CxHxW activation that can be read region by region (regions always inside the activation)."""
    c: int
    h: int
    w: int

    def read(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        raise NotImplementedError

    def leaves(self) -> list["_Leaf"]:
        return []


class _Leaf(_Expr):
    def __init__(self, c: int, h: int, w: int, tensor: torch.Tensor | None = None):
        self.c, self.h, self.w = c, h, w
        self.tensor = tensor      # the input image (never freed here)
        self.store: _Store | None = None

    def read(self, r0, r1, c0, c1):
        if self.tensor is not None:
            return self.tensor[:, :, r0:r1, c0:c1]
        return self.store.read(r0, r1, c0, c1)

    def leaves(self):
        return [self] if self.tensor is None else []


class _Stats:
    """Per-channel mean and variance over the whole activation, merged tile by tile in float64 (Chan et al.'s
    pairwise update, so that no sum of squares loses precision), then the mean and 1/std to normalise with."""

    def __init__(self, channels: int, eps: float = 1e-5):
        self.eps, self.count = eps, 0
        self.mean_ = torch.zeros(channels, dtype=torch.float64)
        self.m2 = torch.zeros(channels, dtype=torch.float64)
        self.mean = self.inv_std = None

    def add(self, t: torch.Tensor) -> None:
        flat = t[0].reshape(t.shape[1], -1)          # (torch.var_mean is several times slower here)
        mean = flat.mean(1, keepdim=True)
        m2 = (flat - mean).square().sum(1)
        n = flat.shape[1]
        mean, m2 = mean[:, 0].double().cpu(), m2.double().cpu()
        total = self.count + n
        delta = mean - self.mean_
        self.mean_ += delta * (n / total)
        self.m2 += m2 + delta.square() * (self.count * n / total)
        self.count = total

    def finish(self) -> None:
        var = self.m2 / self.count                    # biased, as InstanceNorm2d
        self.inv_std = (var + self.eps).rsqrt().float().view(1, -1, 1, 1)
        self.shift = (-self.mean_.float().view(1, -1, 1, 1)) * self.inv_std


class _Norm(_Expr):
    def __init__(self, x: _Expr, stats: _Stats):
        self.x, self.stats, self.c, self.h, self.w = x, stats, x.c, x.h, x.w

    def read(self, *region):
        t = self.x.read(*region)
        return torch.addcmul(self.stats.shift.to(t.device), t, self.stats.inv_std.to(t.device))

    def leaves(self):
        return self.x.leaves()


class _Act(_Expr):
    def __init__(self, x: _Expr, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.x, self.fn, self.c, self.h, self.w = x, fn, x.c, x.h, x.w

    def read(self, *region):
        return self.fn(self.x.read(*region))

    def leaves(self):
        return self.x.leaves()


class _Add(_Expr):
    def __init__(self, a: _Expr, b: _Expr):
        self.a, self.b, self.c, self.h, self.w = a, b, a.c, a.h, a.w

    def read(self, *region):
        return self.a.read(*region) + self.b.read(*region)

    def leaves(self):
        return self.a.leaves() + self.b.leaves()


class _Cat(_Expr):
    def __init__(self, a: _Expr, b: _Expr):
        self.a, self.b, self.c, self.h, self.w = a, b, a.c + b.c, a.h, a.w

    def read(self, *region):
        return torch.cat([self.a.read(*region), self.b.read(*region)], 1)

    def leaves(self):
        return self.a.leaves() + self.b.leaves()


def _read_padded(x: _Expr, r0: int, r1: int, c0: int, c1: int, mode: str) -> torch.Tensor:
    """Region [r0, r1) x [c0, c1) of x, which may reach outside it by less than its size: what lies outside
    is filled by reflection about the border ("reflect") or with zeros ("zeros")."""
    rl, rh, cl, ch = max(r0, 0), min(r1, x.h), max(c0, 0), min(c1, x.w)
    pad = (cl - c0, c1 - ch, rl - r0, r1 - rh)
    t = x.read(rl, rh, cl, ch)
    if not any(pad):
        return t
    if mode == "zeros":
        return F.pad(t, pad)
    if max(pad[:2]) < t.shape[3] and max(pad[2:]) < t.shape[2]:
        return F.pad(t, pad, mode="reflect")
    # a region too thin to reflect within: read the rows and columns the reflection names
    rows = [-i if i < 0 else (2 * (x.h - 1) - i if i >= x.h else i) for i in range(r0, r1)]
    cols = [-i if i < 0 else (2 * (x.w - 1) - i if i >= x.w else i) for i in range(c0, c1)]
    t = x.read(min(rows), max(rows) + 1, min(cols), max(cols) + 1)
    t = t.index_select(2, torch.tensor([i - min(rows) for i in rows], device=t.device))
    return t.index_select(3, torch.tensor([i - min(cols) for i in cols], device=t.device))


class _Conv(_Expr):
    """A Conv2d (after an optional ReflectionPad2d) or ConvTranspose2d, computed for any output region from the
    input region it depends on."""

    def __init__(self, x: _Expr, layer: nn.Module, reflect: int = 0):
        if layer.groups != 1 or layer.dilation != (1, 1):
            raise TypeError("tiled inference supports convolutions without groups or dilation")
        self.x, self.layer = x, layer
        self.transposed = isinstance(layer, nn.ConvTranspose2d)
        (self.k, _), (self.s, _) = layer.kernel_size, layer.stride
        if self.transposed:
            if reflect or layer.padding_mode != "zeros":
                raise TypeError("tiled inference supports transposed convolutions with zero padding only")
            self.p, op = layer.padding[0], layer.output_padding[0]
            self.h = (x.h - 1) * self.s - 2 * self.p + self.k + op
            self.w = (x.w - 1) * self.s - 2 * self.p + self.k + op
        else:
            if layer.padding[0] and reflect:
                raise TypeError("a convolution with its own padding after a ReflectionPad2d is not supported")
            if layer.padding_mode not in ("zeros", "reflect"):
                raise TypeError(f"tiled inference does not support padding_mode={layer.padding_mode!r}")
            self.p = reflect or layer.padding[0]
            self.mode = "reflect" if reflect or layer.padding_mode == "reflect" else "zeros"
            self.h = (x.h + 2 * self.p - self.k) // self.s + 1
            self.w = (x.w + 2 * self.p - self.k) // self.s + 1
        self.c = layer.out_channels
        self.recompute = False
        self.device = layer.weight.device

    def leaves(self):
        return self.x.leaves()

    def _span(self, o0: int, o1: int, n_in: int) -> tuple[int, int]:
        """The input indices that output indices o0..o1-1 depend on."""
        if not self.transposed:
            return o0 * self.s - self.p, (o1 - 1) * self.s - self.p + self.k
        i0 = max(0, -((self.k - 1 - o0 - self.p) // self.s))      # ceil((o0 + p - k + 1) / s)
        i1 = min(n_in, (o1 - 1 + self.p) // self.s + 1)
        return i0, i1

    def read(self, r0, r1, c0, c1):
        a, b = self._span(r0, r1, self.x.h)
        c, d = self._span(c0, c1, self.x.w)
        weight, bias = self.layer.weight, self.layer.bias
        if not self.transposed:
            t = _read_padded(self.x, a, b, c, d, self.mode).to(self.device)
            return F.conv2d(t, weight, bias, stride=self.s)
        t = self.x.read(a, b, c, d).to(self.device)
        y = F.conv_transpose2d(t, weight, None, stride=self.s)
        # y[j] is output index a * s - p + j; crop (or zero-extend where no input reaches) to the region
        top, left = r0 - (a * self.s - self.p), c0 - (c * self.s - self.p)
        y = F.pad(y, (-left, (c1 - c0) + left - y.shape[3], -top, (r1 - r0) + top - y.shape[2]))
        return y if bias is None else y + bias.view(1, -1, 1, 1)


# -- the plan: one pass per stored activation or statistic ----------------------------------------------------
@dataclass
class _Pass:
    expr: _Expr
    out: _Leaf | None           # where the activation goes (None: statistics only)
    stats: _Stats | None
    tile: int


def _act_fn(m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if isinstance(m, nn.ReLU):
        return F.relu
    if isinstance(m, nn.LeakyReLU):
        slope = m.negative_slope
        return lambda t: F.leaky_relu(t, slope)
    if isinstance(m, nn.Tanh):
        return torch.tanh
    if isinstance(m, (nn.Dropout, nn.Identity)):   # inference: dropout off
        return lambda t: t
    return None


class _Planner:
    def __init__(self, height: int, tile: int):
        self.passes: list[_Pass] = []
        self.height, self.tile = height, tile

    def tile_for(self, e: _Expr) -> int:
        return max(MIN_TILE, self.tile * e.h // self.height)

    def store(self, e: _Expr, stats: _Stats | None = None) -> _Leaf:
        leaf = _Leaf(e.c, e.h, e.w)
        self.passes.append(_Pass(e, leaf, stats, self.tile_for(e)))
        return leaf

    def settle(self, x: _Expr) -> _Expr:
        """x itself if reading it computes no convolution (or only ones chosen for recomputation), else x
        stored: what is read more than once (halos, skip connections, residuals) is computed once."""
        return self.store(x) if _computes(x) else x

    def norm(self, x: _Expr, m: nn.InstanceNorm2d) -> _Expr:
        if m.affine or m.track_running_stats:
            raise TypeError("tiled inference supports instance norm without affine parameters or running stats")
        stats = _Stats(x.c, m.eps)
        if isinstance(x, _Conv) and x.h == self.height and not _computes(x.x):
            # a full-resolution convolution of stored inputs: cheap to recompute where it is read (4% of the
            # ResNet's arithmetic) and the largest activation there is, so only its statistics are kept
            x.recompute = True
            self.passes.append(_Pass(x, None, stats, self.tile_for(x)))
            return _Norm(x, stats)
        return _Norm(self.store(x, stats), stats)

    def sequence(self, x: _Expr, layers) -> _Expr:
        reflect = 0
        for m in layers:
            if isinstance(m, nn.ReflectionPad2d):
                pads = set(m.padding)
                if len(pads) != 1:
                    raise TypeError("tiled inference supports symmetric ReflectionPad2d only")
                reflect = pads.pop()
                continue
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                x = _Conv(self.settle(x), m, reflect)
                reflect = 0
                continue
            if reflect:
                raise TypeError("ReflectionPad2d must be followed by a convolution")
            if isinstance(m, nn.InstanceNorm2d):
                x = self.norm(x, m)
            elif isinstance(m, ResnetBlock):
                x = self.settle(x)
                if any(isinstance(n, _Add) for n in _walk(x)):   # keep residual sums from piling up
                    x = self.store(x)
                x = _Add(x, self.sequence(x, m.conv_block))
            elif isinstance(m, UnetBlock):
                x = self.unet(x, m)
            elif isinstance(m, nn.Sequential):
                x = self.sequence(x, m)
            elif (fn := _act_fn(m)) is not None:
                x = _Act(x, fn)
            else:
                raise TypeError(f"tiled inference does not know the layer {type(m).__name__}")
        return x

    def unet(self, x: _Expr, block: UnetBlock) -> _Expr:
        layers = list(block.model)
        if block.outermost:
            return self.sequence(x, layers)
        x = self.settle(x)
        # (the block's in-place LeakyReLU also changes the x that the skip keeps; invisible in the output,
        # since the skip path next goes through the parent's ReLU, and ReLU(LeakyReLU(v)) = ReLU(v))
        return _Cat(x, self.sequence(x, layers))


def _walk(e: _Expr):
    yield e
    for name in ("x", "a", "b"):
        child = getattr(e, name, None)
        if isinstance(child, _Expr):
            yield from _walk(child)


def _computes(e: _Expr) -> bool:
    """Whether reading e runs a convolution that was not chosen for recomputation."""
    return any(isinstance(n, _Conv) and not n.recompute for n in _walk(e))


def _tiles(h: int, w: int, t: int):
    for r in range(0, h, t):
        for c in range(0, w, t):
            yield r, min(r + t, h), c, min(c + t, w)


# -- the entry point ----------------------------------------------------------------------------------------
def generate(net: nn.Module, x: torch.Tensor, tile: int = DEFAULT_TILE,
             progress: Callable[[int, int], None] | None = None, *, max_ram: int = DEFAULT_MAX_RAM,
             workdir: str | None = None) -> torch.Tensor:
    """`net(x)` for an image of any size, computed tile by tile in bounded memory, with whole-image results.

    net: a `ResnetGenerator` (the released reference generators load into it) or `UnetGenerator`, run as in
        inference (dropout off), or cyclegan.backends' ONNX Runtime wrapper of one (its PyTorch layers run). Parameters may sit on any device; tiles are moved there and back.
    x: 1x3xHxW float tensor in [-1, 1], any H, W >= 1 (CPU memory). It is padded at the bottom and right to
        the architecture's multiple (`size_multiple`: 4 for ResNet, 2**num_downs for U-Net) by reflection,
        as the app's inference path does, and the output is cropped back.
    tile: tile side in input pixels (>= 16); a layer at 1/f of the input resolution uses tiles of tile/f.
        Peak memory grows with tile**2 (about 0.5 GB at 512 with the paper's architecture, ngf 64), not
        with the image.
    progress: called as progress(done, total) after every tile of every pass (total: all tiles of all passes).
    max_ram: bytes of intermediate activations kept in RAM; larger ones go to unlinked files in `workdir`
        (default: the system's temporary folder), which need up to about 3 x ngf x H x W bytes.
    Returns a 1x3xHxW float32 CPU tensor equal to net(x) (on the padded image, cropped) within float
    rounding (about 1e-5 with the paper's architecture). Raises TypeError for an unsupported network and
    ValueError for a wrong input shape or tile; OSError if the temporary folder is full.
    Source: instance normalisation, Ulyanov et al. 2016 (arXiv 1607.08022): per image and channel.
    """
    net = getattr(net, "torch_module", net)       # an ONNX Runtime wrapper (cyclegan.backends): its layers
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"generate takes one image as a 1xCxHxW tensor, got shape {tuple(x.shape)}")
    from .explain import pad_canvas      # (here: explain may import this module)
    h, w = x.shape[-2:]
    xp = pad_canvas(x.detach().float().cpu(), size_multiple(net), min_side(net))
    return forward(net, xp, tile, progress, max_ram=max_ram, workdir=workdir)[:, :, :h, :w]


def forward(net: nn.Module, x: torch.Tensor, tile: int = DEFAULT_TILE,
            progress: Callable[[int, int], None] | None = None, *, max_ram: int = DEFAULT_MAX_RAM,
            workdir: str | None = None) -> torch.Tensor:
    """`net(x)` tile by tile for an x whose size the network accepts as it is (no padding, no crop): the
    generators as in `generate`, and `PatchDiscriminator` (its patch scores for the whole image). The other
    arguments, the results and the errors are those of `generate`."""
    net = getattr(net, "torch_module", net)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"tiled inference takes one image as a 1xCxHxW tensor, got shape {tuple(x.shape)}")
    if tile < MIN_TILE:
        raise ValueError(f"tile must be at least {MIN_TILE} pixels, got {tile}")
    if not isinstance(net, (ResnetGenerator, UnetGenerator, PatchDiscriminator)):
        raise TypeError(f"tiled inference supports ResnetGenerator, UnetGenerator and PatchDiscriminator, not "
                        f"{type(net).__name__}")
    x = x.detach().float().cpu()
    planner = _Planner(x.shape[2], tile)
    src = _Leaf(x.shape[1], x.shape[2], x.shape[3], x)
    with torch.inference_mode():
        final = planner.store(planner.sequence(src, [net.model]))
        return _run(planner.passes, final, progress, max_ram, workdir)


def _run(passes: list[_Pass], final: _Leaf, progress, max_ram: int, workdir: str | None) -> torch.Tensor:
    last_use: dict[int, int] = {}
    for i, p in enumerate(passes):
        for leaf in p.expr.leaves():
            last_use[id(leaf)] = i
    grids = [list(_tiles(p.expr.h, p.expr.w, p.tile)) for p in passes]
    total, done = sum(len(g) for g in grids), 0
    in_ram = 0
    live: dict[int, _Leaf] = {}
    try:
        for i, (p, grid) in enumerate(zip(passes, grids)):
            if p.out is not None:
                e = p.expr
                ram = p.out is final or in_ram + 4 * e.c * e.h * e.w <= max_ram
                p.out.store = _Store(e.c, e.h, e.w, ram, workdir)
                in_ram += p.out.store.nbytes if ram and p.out is not final else 0
                live[id(p.out)] = p.out
            for r0, r1, c0, c1 in grid:
                y = p.expr.read(r0, r1, c0, c1)
                if p.stats is not None:
                    p.stats.add(y)
                if p.out is not None:
                    p.out.store.write(r0, c0, y.cpu())
                done += 1
                if progress is not None:
                    progress(done, total)
            if p.stats is not None:
                p.stats.finish()
            for key in [k for k, j in last_use.items() if j == i and k in live and live[k] is not final]:
                leaf = live.pop(key)
                in_ram -= leaf.store.nbytes if leaf.store.ram else 0
                leaf.store.close()
        return final.store.tensor
    finally:
        for leaf in live.values():
            if leaf is not final:
                leaf.store.close()


# -- whole photos ---------------------------------------------------------------------------------------------
TILED_ABOVE_MP = 4.0     # automatic tiling above this many megapixels (after any --max-side resize)


def _size_after(image, max_side: int | None) -> tuple[int, int] | None:
    """(w, h) an image file will have after the max_side resize, read from its header; None if unknown."""
    from PIL import Image
    try:
        with Image.open(image) as im:
            w, h = im.size
    except Exception:          # noqa: BLE001 - not a readable path: the decoder will say why
        return None
    if max_side and max(w, h) > max_side:
        s = max_side / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    return w, h


def explain_large(model, image, direction: str = "AtoB", *, max_side: int | None = None,
                  max_pixels: int | None = None, tile: int | None = None, full: bool = False,
                  progress: Callable[[float, float], None] | None = None):
    """`cyclegan.explain.explain_steps`' panels for a whole photo at its size (after `max_side`), every network
    run by tiled inference: what `python -m cyclegan.translate` uses for large images.

    model: a CycleGAN; image: a path, bytes, PIL image or array; direction: "AtoB" or "BtoA".
    tile: None = automatic (tiled only above TILED_ABOVE_MP megapixels; below, returns None and the caller
        runs the whole-image path), 0 = never (returns None), > 0 = always, with that tile side (>= 16).
    full: also F(G(x)), F(x), the cycle and identity error maps and, with discriminators, the realness map
        (the same padding, networks and maps as explain_steps; `numbers` stays empty).
    progress: called as progress(done, total) counted in network passes (floats).
    Returns a complete `cyclegan.explain.Explanation` (or None, see tile). Raises cyclegan.images.ImageError
    for an unusable image (max_pixels: refuse larger; default the app's limit)."""
    from .explain import Explanation, canvas_rules, load_input, pad_canvas
    from .images import DEFAULT_MAX_PIXELS, pil_to_tensor, tensor_to_uint8
    if tile == 0:
        return None
    if tile is None:
        size = _size_after(image, max_side) if isinstance(image, (str, os.PathLike)) else None
        if size is not None and size[0] * size[1] <= TILED_ABOVE_MP * 1e6:
            return None
    img, original_size = load_input(image, max_side, max_pixels or DEFAULT_MAX_PIXELS)
    w, h = img.size
    if tile is None and w * h <= TILED_ABOVE_MP * 1e6:
        return None
    tile = tile or DEFAULT_TILE
    G, F_ = model.generators(direction)
    D = model.discriminator_of_target(direction) if full else None
    total = 1 + 2 * full + (D is not None)
    ex = Explanation(direction=direction, label=model.direction_label(direction), size=(w, h),
                     original_size=original_size, stage="complete")

    def run(net, t, k):
        step = None if progress is None else (lambda done, n: progress(k + done / n, total))
        return forward(net, t, tile, step)

    x = pil_to_tensor(img)
    ex.real = np.asarray(img)
    del img
    xp = pad_canvas(x, *canvas_rules(model))
    yp = run(G, xp, 0)
    ex.fake = tensor_to_uint8(yp[..., :h, :w])
    if not full:
        return ex
    rec = run(F_, yp, 1)[..., :h, :w]
    ex.cycle_error = (x - rec).abs().mean(1)[0].numpy()
    ex.rec = tensor_to_uint8(rec)
    del rec
    idt = run(F_, xp, 2)[..., :h, :w]
    ex.identity_error = (x - idt).abs().mean(1)[0].numpy()
    ex.idt = tensor_to_uint8(idt)
    del idt
    if D is not None:
        scores = run(D, yp, 3)
        up = F.interpolate(scores, size=yp.shape[-2:], mode="bilinear", align_corners=False)
        ex.realness = up[0, 0, :h, :w].numpy()
        ex.realness_patches = scores[0, 0].numpy()
    return ex
