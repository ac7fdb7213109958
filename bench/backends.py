"""PyTorch (eager) against ONNX Runtime for everything the app and the command line run on a CPU.

    python bench/backends.py --threads 2
    python bench/backends.py --threads 2 --skip-startup --repeats 3

For the default model (models/photo2sketch) and the paper's architecture (ngf 64, 9 blocks, seeded random
weights, the layout of the reference implementation's released generators), with each backend
(`cyclegan.backends.accelerate(..., backend="torch" | "onnxruntime")`), timed round-robin so that both see the
same machine load, median of --repeats:
  - one-off start-up cost: export to ONNX and create the sessions (empty cache), and with a warm cache;
  - one generator pass at 256x256 and 512x512;
  - the app's first image (G(x), `explain_steps` to its first yield) and whole panel (`explain`: three
    generator passes, the discriminator, the heat maps) on a photo at 256 and 512 px;
  - default model only (minutes per call with the paper's architecture): translate without tiles
    (`--max-side 0` on a 2048x1368 photo: one whole-image pass, what the CLI runs below the tiling threshold),
    and the tiled path (`cyclegan.tiled.generate`, 2048x1368), which runs the PyTorch layers in both cases;
and the time from `python app.py` to the first answered HTTP request with each backend, the export cache empty
(goal: under 15 s on 2 cores). Prints the machine and the load average before and after.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from cyclegan.backends import accelerate, weights_key  # noqa: E402
from cyclegan.explain import explain, explain_steps  # noqa: E402
from cyclegan.model import CycleGAN  # noqa: E402
from cyclegan.tiled import generate  # noqa: E402
from tiled import load, machine, photo  # noqa: E402  (bench/tiled.py)

BACKENDS = ("torch", "onnxruntime")


def models() -> dict[str, CycleGAN]:
    default = CycleGAN.from_pretrained(ROOT / "models" / "photo2sketch").eval()
    torch.manual_seed(0)
    paper = CycleGAN(ngf=64, n_blocks=9, with_discriminators=True).eval()
    return {"default (ngf 16, 6 blocks)": default, "paper (ngf 64, 9 blocks)": paper}


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def first_image(model, img, side):
    next(iter(explain_steps(model, img, "AtoB", max_side=side, full=False)))


def startup(backend: str, threads: int) -> float:
    """Seconds from `python app.py` to the first answered HTTP request, with the export cache emptied."""
    cache = ROOT / ".gradio" / "onnx"
    if backend == "onnxruntime":
        default = CycleGAN.from_pretrained(ROOT / "models" / "photo2sketch")
        for name in ("G_AB", "G_BA"):
            (cache / f"{weights_key(getattr(default, name))}.onnx").unlink(missing_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, CYCLEGAN_BACKEND=backend, CYCLEGAN_THREADS=str(threads), GRADIO_SERVER_PORT=str(port),
               GRADIO_SERVER_NAME="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t < 180:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t
            except OSError:
                time.sleep(0.2)
        return float("inf")
    finally:
        proc.terminate()
        proc.wait(30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="default,paper", help="comma-separated: default, paper")
    ap.add_argument("--skip-startup", action="store_true", help="skip the `python app.py` start-up timing")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; {args.threads} threads; median of {args.repeats}")
    print(f"start: {load()}")
    rows: list[tuple[str, str, dict[str, float]]] = []
    for label, model in models().items():
        if label.split()[0] not in args.models.split(","):
            continue
        fast: dict[str, CycleGAN] = {}
        cold, warm = {}, {}
        with tempfile.TemporaryDirectory() as cache:
            cold["torch"] = warm["torch"] = 0.0
            cold["onnxruntime"] = timed(lambda: fast.setdefault(
                "onnxruntime", accelerate(model, cache, args.threads, backend="onnxruntime")))
            warm["onnxruntime"] = timed(lambda: accelerate(model, cache, args.threads, backend="onnxruntime"))
        fast["torch"] = model
        assert "ONNX Runtime unavailable" not in fast["onnxruntime"].source, fast["onnxruntime"].source
        rows.append((label, "start-up: export + sessions (empty cache)", cold))
        rows.append((label, "start-up: sessions (cached export)", warm))
        imgs = {s: photo(s, s) for s in (256, 512)}
        big = photo(2048, 1368)
        from PIL import Image
        from cyclegan.images import tensor_to_uint8
        pics = {s: Image.fromarray(tensor_to_uint8(photo(s * 3 // 2, s))) for s in (256, 512)}
        tasks = {}
        for s in (256, 512):
            tasks[f"one generator pass {s}x{s}"] = lambda m, s=s: m.G_AB(imgs[s])
        for s in (256, 512):
            tasks[f"app first image (G(x)), {s} px"] = lambda m, s=s: first_image(m, pics[s], s)
            tasks[f"app whole panel, {s} px"] = lambda m, s=s: explain(m, pics[s], "AtoB", max_side=s)
        if label.startswith("default"):       # minutes per call with the paper's architecture on 2 cores
            tasks["translate --max-side 0, 2048x1368 (one whole-image pass)"] = lambda m: m.G_AB(big)
            tasks["tiled path 2048x1368 (runs the PyTorch layers with either backend)"] = \
                lambda m: generate(m.G_AB, big, 512)
        with torch.inference_mode():
            for name, fn in tasks.items():
                for b in BACKENDS:
                    fn(fast[b])                                   # warm-up
                times = {b: [] for b in BACKENDS}
                for _ in range(args.repeats):
                    for b in BACKENDS:
                        times[b].append(timed(lambda: fn(fast[b])))
                rows.append((label, name, {b: statistics.median(v) for b, v in times.items()}))
                r = rows[-1][2]
                print(f"  {label}: {name}: torch {r['torch']:.3f} s, onnxruntime {r['onnxruntime']:.3f} s",
                      flush=True)
    if not args.skip_startup:
        ups = {b: startup(b, args.threads) for b in BACKENDS}
        rows.append(("app (default model)", "`python app.py` to first answered request, empty cache", ups))
    print(f"end: {load()}\n")
    print("| model | task | PyTorch s | ONNX Runtime s | speed-up |\n| --- | --- | ---: | ---: | ---: |")
    for label, name, r in rows:
        sp = f"{r['torch'] / r['onnxruntime']:.2f}x" if r["onnxruntime"] and r["torch"] else ""
        print(f"| {label} | {name} | {r['torch']:.3f} | {r['onnxruntime']:.3f} | {sp} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
