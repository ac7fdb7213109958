#!/usr/bin/env python
"""Training-step speed: `cyclegan.training.Trainer` against the straightforward reference-order step.

    python bench/train_step.py                       # 128x128 and 256x256, default architecture, CPU (+CUDA if any)
    python bench/train_step.py --sizes 128 --repeats 5 --threads 2
    python bench/train_step.py --sizes 32 --repeats 1 --warmup 0 --ngf 8 --n-blocks 1 --ndf 8   # a smoke run

Each variant starts from the same weights and sees the same images; timings alternate between variants
(round-robin) so that a noisy shared machine slows them alike. Prints images per second (wall clock) and CPU
seconds per step (process time of all threads, less sensitive to other load), each as a ratio to the baseline
measured in the same run, and how far the first step's losses are from the baseline's.
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from baseline import BaselineStep  # noqa: E402
from cyclegan import CycleGAN  # noqa: E402
from cyclegan.training import Trainer  # noqa: E402


def variants(model: CycleGAN, device: str) -> dict:
    """name -> a step function taking (real_A, real_B) and returning the losses."""
    out = {"baseline (reference order, eager fp32)": BaselineStep(copy.deepcopy(model).to(device))}
    out["ours: shared passes + foreach Adam"] = Trainer(copy.deepcopy(model), device=device).train_step
    out["ours + channels_last"] = Trainer(copy.deepcopy(model), device=device,
                                          channels_last=True).train_step
    if device == "cuda":
        out["ours + bf16 autocast + channels_last"] = Trainer(copy.deepcopy(model), device=device,
                                                             bf16=True, channels_last=True).train_step
    return out


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bench(size: int, device: str, repeats: int, warmup: int, ngf: int = 64, n_blocks: int = 9,
          ndf: int = 64) -> None:
    """Times `warmup` untimed then `repeats` timed steps of each variant, round-robin (repeats >= 1)."""
    torch.manual_seed(0)
    model = CycleGAN(ngf=ngf, n_blocks=n_blocks, ndf=ndf, with_discriminators=True)
    steps = variants(model, device)
    images = [(torch.rand(1, 3, size, size, device=device) * 2 - 1, torch.rand(1, 3, size, size, device=device) * 2 - 1)
              for _ in range(warmup + repeats)]
    first: dict[str, dict] = {}  # each variant's losses at step 1, from the same weights and images
    times: dict[str, list[float]] = {name: [] for name in steps}
    cpu_times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(warmup + repeats):
        for name, step in steps.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            losses = step(*images[i])
            sync(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
                cpu_times[name].append(time.process_time() - c0)
            if i == 0:
                first[name] = losses
    base_name = next(iter(steps))
    base = statistics.median(times[base_name])
    base_cpu = statistics.median(cpu_times[base_name])
    arch = "default architecture" if (ngf, n_blocks, ndf) == (64, 9, 64) else "architecture"
    print(f"\n{size}x{size}, batch 1, {device}, {arch} (ngf {ngf}, {n_blocks} blocks, ndf {ndf}), "
          f"median of {len(times[base_name])} timed steps per variant (after {warmup} untimed)")
    print(f"{'variant':42s} {'s/step':>8s} {'img/s':>7s} {'ratio':>6s} {'CPU s/step':>10s} {'CPU ratio':>9s} "
          f"{'max rel. loss diff, step 1':>27s}")
    for name, ts in times.items():
        med, cpu = statistics.median(ts), statistics.median(cpu_times[name])
        diff = max(abs(first[name][k] - first[base_name][k]) / max(abs(first[base_name][k]), 1e-8)
                   for k in first[base_name])
        print(f"{name:42s} {med:8.3f} {1 / med:7.2f} {base / med:5.2f}x {cpu:10.3f} {base_cpu / cpu:8.2f}x "
              f"{diff:27.2e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--repeats", type=int, default=5, help="timed steps per variant (at least 1)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant before them (0 or more)")
    p.add_argument("--ngf", type=int, default=64, help="generator width (the paper's: 64)")
    p.add_argument("--n-blocks", type=int, default=9, help="ResNet blocks per generator (the paper's: 9)")
    p.add_argument("--ndf", type=int, default=64, help="discriminator width (the paper's: 64)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu, plus cuda if present)")
    args = p.parse_args()
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be at least 1 and --warmup at least 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads" + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    for device in devices:
        for size in args.sizes:
            bench(size, device, args.repeats, args.warmup, args.ngf, args.n_blocks, args.ndf)


if __name__ == "__main__":
    main()
