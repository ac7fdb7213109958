"""Tiled inference (cyclegan.tiled.generate) gives the whole-image result, in memory bounded by the tile."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from cyclegan.networks import ResnetGenerator, UnetGenerator, init_weights
from cyclegan.explain import pad_canvas
from cyclegan.tiled import generate, min_side, size_multiple

ROOT = Path(__file__).resolve().parents[1]


def tiny(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "resnet":
        net = ResnetGenerator(ngf=8, n_blocks=2)
    elif kind == "resnet6-dropout":      # the released reference generators' layout (6 blocks), dropout layers
        net = ResnetGenerator(ngf=4, n_blocks=6, use_dropout=True)
    else:
        net = UnetGenerator(ngf=8, num_downs=5)
    # a larger gain than training's 0.02 so that every layer matters to the output
    return init_weights(net, 0.2).eval()


def whole(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    m = size_multiple(net)
    with torch.no_grad():
        return net(pad_canvas(x, m, min_side(net)))[..., :x.shape[2], :x.shape[3]]


@pytest.mark.parametrize("kind", ["resnet", "resnet6-dropout", "unet"])
@pytest.mark.parametrize("h,w,tile,max_ram", [(64, 64, 16, 1 << 30), (75, 93, 16, 0), (130, 67, 32, 1 << 30),
                                              (33, 200, 512, 0)])
def test_equals_the_whole_image_result(kind, h, w, tile, max_ram):
    net = tiny(kind)
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w)) * 2 - 1
    ref = whole(net, x)
    y = generate(net, x, tile=tile, max_ram=max_ram)
    assert y.shape == x.shape
    assert ref.std() > 0.1                              # a real output, not a constant
    assert (y - ref).abs().max().item() < 1e-4          # float rounding only (1e-4 = 0.013 grey level)


def test_naive_tiles_would_not_match():
    """The reason for all this: tiles normalised by their own statistics give a different (seamed) image."""
    net = tiny("resnet")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    x[..., :, 32:] = x[..., :, 32:] * 0.2 + 0.5          # two halves with different statistics
    ref = whole(net, x)
    with torch.no_grad():
        naive = torch.cat([net(x[..., :32]), net(x[..., 32:])], 3)
    assert (naive - ref).abs().max() > 0.05
    assert (generate(net, x, tile=32) - ref).abs().max() < 1e-4


def test_progress_counts_every_tile_once():
    net = tiny("unet")
    calls = []
    generate(net, torch.zeros(1, 3, 96, 96), tile=32, progress=lambda done, total: calls.append((done, total)))
    total = calls[0][1]
    assert [d for d, _ in calls] == list(range(1, total + 1))
    assert all(t == total for _, t in calls) and total > 10


def test_bad_inputs_are_refused():
    net = tiny("resnet")
    with pytest.raises(ValueError, match="one image"):
        generate(net, torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="tile"):
        generate(net, torch.zeros(1, 3, 32, 32), tile=4)
    with pytest.raises(TypeError, match="Sequential"):
        generate(nn.Sequential(nn.Conv2d(3, 3, 3)), torch.zeros(1, 3, 32, 32))
    affine = tiny("resnet")
    affine.model[2] = nn.InstanceNorm2d(8, affine=True)
    with pytest.raises(TypeError, match="affine"):
        generate(affine, torch.zeros(1, 3, 32, 32))


def test_an_image_too_large_for_memory_untiled_goes_through_tiled(tmp_path):
    """Under an address-space limit that whole-image inference cannot fit in, tiled inference still runs
    (intermediate activations spill to disk) and returns the full-size output."""
    script = textwrap.dedent("""
        import resource, sys, torch
        sys.path.insert(0, sys.argv[1])
        from cyclegan.networks import ResnetGenerator, init_weights
        from cyclegan.tiled import generate
        torch.set_num_threads(1)
        torch.manual_seed(0)
        net = init_weights(ResnetGenerator(ngf=8, n_blocks=2), 0.2).eval()
        x = torch.rand(1, 3, 1536, 1536) * 2 - 1                    # 28 MB in, 28 MB out
        small = x[..., :256, :256].clone()
        with torch.no_grad():                                        # warm up: threads, allocator arenas
            net(small)
        generate(net, small, tile=128, max_ram=0, workdir=sys.argv[2])
        vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + (96 << 20), resource.RLIM_INFINITY))
        try:
            with torch.no_grad():
                net(x)                                               # 75 MB per full-resolution activation
            print("untiled: fitted")
        except (RuntimeError, MemoryError):
            print("untiled: out of memory")
        y = generate(net, x, tile=128, max_ram=0, workdir=sys.argv[2])
        print("tiled:", tuple(y.shape), round(float(y.std()), 3))
    """)
    out = subprocess.run([sys.executable, "-c", script, str(ROOT), str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "untiled: out of memory" in out.stdout, out.stdout
    assert "tiled: (1, 3, 1536, 1536)" in out.stdout, out.stdout
    assert list(tmp_path.iterdir()) == []              # the temporary activations are gone


def test_explain_large_gives_the_app_s_panels_at_full_size(tmp_path):
    """The command line's path for large photos: every panel and map equals explain's whole-image one."""
    import numpy as np
    from PIL import Image
    from cyclegan.explain import explain
    from cyclegan.model import CycleGAN
    from cyclegan.tiled import explain_large
    torch.manual_seed(0)
    model = CycleGAN(ngf=8, n_blocks=2, ndf=8, with_discriminators=True).eval()
    rgb = (np.random.default_rng(0).random((90, 141, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    assert explain_large(model, tmp_path / "p.png") is None           # small: the whole-image path
    assert explain_large(model, tmp_path / "p.png", tile=0) is None
    calls = []
    big = explain_large(model, tmp_path / "p.png", "BtoA", tile=32, full=True,
                        progress=lambda done, total: calls.append((done, total)))
    ref = explain(model, tmp_path / "p.png", "BtoA", max_side=None)
    assert big.size == ref.size == (141, 90)
    for name in ("real", "fake", "rec", "idt"):
        assert np.abs(getattr(big, name).astype(int) - getattr(ref, name)).max() <= 1, name
    for name in ("cycle_error", "identity_error", "realness", "realness_patches"):
        assert np.abs(getattr(big, name) - getattr(ref, name)).max() < 1e-4, name
    assert calls[-1] == (4.0, 4)
