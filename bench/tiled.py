"""Tiled inference (cyclegan.tiled.generate) against whole-image inference: agreement, peak memory, time.

    python bench/tiled.py --threads 2                       # both models, 1, 6 and 24 MP
    python bench/tiled.py --threads 2 --models default --sizes 1,6

For each model (the paper's architecture, ngf 64 and 9 blocks, with seeded random weights; and the embedded
default model, models/photo2sketch) it runs, each in a fresh process so that peak RSS is that run's own:
  1. agreement: G_AB on a 2048x1368 photo, whole-image `net(x)` and tiled; reports the mean absolute
     difference and the largest per-row and per-column mean absolute difference, in grey levels (0-255),
     with the goals (<= 0.5 and <= 2), and the whole-image time per megapixel: the baseline;
  2. tiled runs at about 1, 6 and 24 megapixels (1224x816, 3000x2000, 6000x4000): seconds per megapixel,
     its ratio to the baseline, and peak RSS (goal for 6000x4000: <= 3 GB).
The input is a shipped example photo (examples/photo) upscaled to each size. The machine, torch version and
load (os.getloadavg) are printed before and after: the machines these run on are shared.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {1: (1224, 816), 6: (3000, 2000), 24: (6000, 4000)}
COMPARE = (2048, 1368)   # at least 2048x1365, sides multiples of 4 (net(x) needs them)
RSS_GOAL_GB = 3.0


def photo(w: int, h: int):
    """A shipped example photo, upscaled (Lanczos) to w x h, as a 1x3xHxW tensor in [-1, 1]."""
    from PIL import Image
    from cyclegan.images import list_images, pil_to_tensor
    src = list_images(ROOT / "examples" / "photo")[0]
    return pil_to_tensor(Image.open(src).convert("RGB").resize((w, h), Image.Resampling.LANCZOS))


def generator(name: str):
    import torch
    if name == "paper":
        from cyclegan.networks import ResnetGenerator, init_weights
        torch.manual_seed(0)
        return init_weights(ResnetGenerator(ngf=64, n_blocks=9)).eval()
    from cyclegan.model import CycleGAN
    return CycleGAN.from_pretrained(ROOT / "models" / "photo2sketch").eval().G_AB


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9   # ru_maxrss is in kB on Linux


def child(job: dict) -> dict:
    import torch
    from cyclegan.tiled import generate
    torch.set_num_threads(job["threads"])
    net = generator(job["model"])
    x = photo(job["w"], job["h"])
    mp = job["w"] * job["h"] / 1e6
    with torch.no_grad():
        net(x[..., :64, :64])                                    # warm-up: threads, oneDNN kernels
    out = {"rss_before_gb": peak_rss_gb()}
    t = time.perf_counter()
    y = generate(net, x, tile=job["tile"], workdir=job.get("workdir"))
    out["tiled_s"] = time.perf_counter() - t
    out["tiled_s_per_mp"] = out["tiled_s"] / mp
    out["peak_rss_gb"] = peak_rss_gb()
    if job["kind"] == "compare":
        t = time.perf_counter()
        with torch.no_grad():
            ref = net(x)
        out["whole_s"] = time.perf_counter() - t
        out["whole_s_per_mp"] = out["whole_s"] / mp
        d = (y - ref).abs()[0].mean(0) * 127.5                   # grey levels, mean over RGB
        out.update(mean_abs_grey=d.mean().item(), max_abs_grey=d.max().item(),
                   worst_row_grey=d.mean(1).max().item(), worst_col_grey=d.mean(0).max().item())
    return out


def run_child(job: dict) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"child {job} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch
    return (f"{cpu}, {len(os.sched_getaffinity(0))} cores available, torch {torch.__version__}, "
            f"python {platform.python_version()}")


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="paper,default", help="comma-separated: paper, default")
    ap.add_argument("--sizes", default="1,6,24", help="comma-separated megapixels among 1, 6, 24")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--workdir", default=None, help="folder for the temporary activations (default: $TMPDIR)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0

    print(f"machine: {machine()}; {args.threads} threads; tile {args.tile}")
    print(f"start: {load()}")
    failed = []
    for model in args.models.split(","):
        base = dict(model=model, threads=args.threads, tile=args.tile, workdir=args.workdir or tempfile.gettempdir())
        c = run_child(dict(base, kind="compare", w=COMPARE[0], h=COMPARE[1]))
        baseline = c["whole_s_per_mp"]
        print(f"\n[{model}] {COMPARE[0]}x{COMPARE[1]}: tiled vs whole image: mean |diff| {c['mean_abs_grey']:.4f} "
              f"grey levels (goal <= 0.5), worst row {c['worst_row_grey']:.4f}, worst column "
              f"{c['worst_col_grey']:.4f} (goal <= 2), largest pixel {c['max_abs_grey']:.4f}")
        print(f"[{model}] baseline, whole image {COMPARE[0]}x{COMPARE[1]}: {c['whole_s']:.1f} s = "
              f"{baseline:.2f} s/MP; tiled there: {c['tiled_s_per_mp']:.2f} s/MP "
              f"({c['tiled_s_per_mp'] / baseline:.2f}x)")
        if not (c["mean_abs_grey"] <= 0.5 and max(c["worst_row_grey"], c["worst_col_grey"]) <= 2):
            failed.append(f"{model}: agreement")
        print(f"[{model}] {'size':>10} {'MP':>5} {'s':>8} {'s/MP':>7} {'vs baseline':>11} {'peak RSS GB':>11}")
        for mp in [int(s) for s in args.sizes.split(",")]:
            w, h = SIZES[mp]
            r = run_child(dict(base, kind="tiled", w=w, h=h))
            print(f"[{model}] {f'{w}x{h}':>10} {w * h / 1e6:5.1f} {r['tiled_s']:8.1f} {r['tiled_s_per_mp']:7.2f} "
                  f"{r['tiled_s_per_mp'] / baseline:10.2f}x {r['peak_rss_gb']:11.2f}", flush=True)
            if mp == 24 and r["peak_rss_gb"] > RSS_GOAL_GB:
                failed.append(f"{model}: peak RSS {r['peak_rss_gb']:.2f} GB")
    print(f"\nend: {load()}")
    print("goals met" if not failed else f"goals missed: {'; '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
