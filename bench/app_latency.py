"""How long the app makes a person wait, against the generator passes it cannot avoid.

    python bench/app_latency.py                        # default model and reference architecture, 256 and 512
    python bench/app_latency.py --requests 3 --sizes 128 --models default     # a quick check that it works
    python bench/app_latency.py --fast-paths           # also channels_last, torch.compile, int8, ONNX Runtime

For each model and size it launches app.py in a subprocess (CPU, --threads torch threads, longest side = size)
and sends --requests distinct size x size images through gradio_client, timing the first streamed result (G(x))
and the whole panel (the client does not download the PNGs: a browser fetches them itself, in parallel). Before each request, in this process and with the same threads, it times three plain eager
generator passes (G(x), F(G(x)), F(x)) on the same size and the app's computation itself
(`cyclegan.explain.explain_steps`, no HTTP, no PNG): the first image is compared with one pass, the whole
panel with the three (interleaving keeps all three under the same machine load). The app's peak resident memory
(VmHWM) is read at the end. "reference" is the paper's architecture (ngf 64, 9 blocks, with discriminators) with
random weights; "default" is what the app loads by default (app.default_model_folder()). The app runs with
CYCLEGAN_MAX_SIDE and CYCLEGAN_LARGE_MODEL_SIDE set to the size, and PyTorch unless CYCLEGAN_BACKEND says otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import default_model_folder, random_model  # noqa: E402
from cyclegan import CycleGAN  # noqa: E402
from cyclegan.explain import canvas_rules, explain_steps, pad_canvas  # noqa: E402
from cyclegan.images import tensor_to_uint8  # noqa: E402
from cyclegan.loading import load_model  # noqa: E402


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(np.ceil(q / 100 * len(v))) - 1))]


def start_app(model_dir: str, size: int, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CYCLEGAN_MODEL": model_dir, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "CYCLEGAN_MAX_SIDE": str(size),
           "CYCLEGAN_LARGE_MODEL_SIDE": str(size), "CYCLEGAN_BACKEND": os.environ.get("CYCLEGAN_BACKEND", "torch"),
           "CYCLEGAN_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=log.parent, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the app did not start")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def three_passes(model: CycleGAN, size: int, seed: int) -> tuple[float, float]:
    """(one generator pass, three passes) in seconds: G(x), F(G(x)), F(x), plain eager float32."""
    G, F = model.generators("AtoB")
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.inference_mode():
        t0 = time.perf_counter()
        y = G(x)
        t1 = time.perf_counter()
        F(y)
        F(x)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t0


def bench_app(label: str, model_dir: str, size: int, n: int, threads: int, tmp: Path) -> dict:
    from gradio_client import Client, handle_file
    model = load_model(model_dir)
    proc, url = start_app(model_dir, size, threads, tmp / f"app-{label}-{size}.log")
    try:
        # The results' URLs, not the files: a browser fetches the images itself, in parallel.
        client = Client(url, verbose=False, download_files=False)
        rng = np.random.default_rng(size)

        def request(i: int, retry: bool = True) -> tuple[float, float]:
            path = tmp / f"in-{label}-{size}-{i}.png"
            Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(path)
            t0 = time.perf_counter()
            job = client.submit(handle_file(str(path)), "AtoB", 0, False, api_name="/explain")
            first = None
            try:
                for out in job:
                    if first is None and out[1] is not None:
                        first = time.perf_counter() - t0
                job.result()
            except Exception as e:
                if not retry:
                    raise
                print(f"  request {i} failed ({type(e).__name__}: {e}); once more", file=sys.stderr)
                return request(i, retry=False)
            total = time.perf_counter() - t0
            return first if first is not None else total, total

        def in_process(i: int) -> tuple[float, float]:
            """The same computation in this process (no HTTP, no PNG): cyclegan.explain.explain_steps."""
            img = Image.fromarray((np.random.default_rng(10_000 + i).random((size, size, 3)) * 255).astype(np.uint8))
            t0 = time.perf_counter()
            steps = explain_steps(model, img, "AtoB", max_side=size)
            next(steps)
            first = time.perf_counter() - t0
            next(steps)
            return first, time.perf_counter() - t0

        three_passes(model, size, -1)
        in_process(-1)
        request(-1)                                               # warm-up, not counted
        rows = []
        for i in range(n):
            time.sleep(1.0)                                       # let the server and client finish the last one
            one, three = three_passes(model, size, i)
            ip_first, ip_total = in_process(i)
            first, total = request(i)
            rows.append((one, three, ip_first, ip_total, first, total))
            print(f"  {label} {size}px request {i + 1}/{n}: app first {first:.2f}s, in-process first "
                  f"{ip_first:.2f}s (1 pass {one:.2f}s); app panel {total:.2f}s, in-process panel {ip_total:.2f}s "
                  f"(3 passes {three:.2f}s)", file=sys.stderr)
        compare = time_compare(client, size, n, tmp) if label == "default" else None
        peak = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)
    one, three, ip_first, ip_total, first, total = (list(c) for c in zip(*rows))
    med = statistics.median
    return dict(model=label, size=size, requests=n, threads=threads,
                one_pass_median=med(one), three_passes_median=med(three),
                first_median=med(first), first_p95=pct(first, 95), panel_median=med(total), panel_p95=pct(total, 95),
                first_ratio=med(first) / med(one), panel_ratio=med(total) / med(three),
                inproc_first_median=med(ip_first), inproc_panel_median=med(ip_total),
                inproc_first_ratio=med(ip_first) / med(one), inproc_panel_ratio=med(ip_total) / med(three),
                peak_rss_mb=peak, compare=compare)


def time_compare(client, size: int, n: int, tmp: Path) -> dict | None:
    """'Why both losses?' (/compare: six ablation models) against the six models' own passes in this process
    (G(x), F(G(x)), F(x) each), interleaved."""
    from gradio_client import handle_file
    from app import ABLATIONS
    folders = [ROOT / "models" / "ablation" / n for n in ABLATIONS if (ROOT / "models" / "ablation" / n).is_dir()]
    if not folders:
        return None
    models = [load_model(str(f)) for f in folders]
    app_s, passes_s = [], []
    for i in range(-1, n):
        path = tmp / f"cmp-{size}-{i}.png"
        Image.fromarray((np.random.default_rng(500 + i).random((size, size, 3)) * 255).astype(np.uint8)).save(path)
        t = sum(three_passes(m, size, i)[1] for m in models)
        t0 = time.perf_counter()
        client.predict(handle_file(str(path)), "AtoB", api_name="/compare")
        if i >= 0:
            app_s.append(time.perf_counter() - t0)
            passes_s.append(t)
    med = statistics.median
    return dict(models=len(models), median=med(app_s), p95=pct(app_s, 95), passes_median=med(passes_s),
                ratio=med(app_s) / med(passes_s))


# -- faster CPU paths for the generator --------------------------------------------------------------------------
def time_fn(fn, x, reps: int) -> tuple[float, torch.Tensor]:
    with torch.inference_mode():
        y = fn(x)
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn(x)
            ts.append(time.perf_counter() - t)
    return statistics.median(ts), y


def photo(size: int) -> torch.Tensor:
    try:
        from skimage import data
        img = Image.fromarray(data.chelsea())
    except Exception:
        img = Image.fromarray((np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8))
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div(127.5).sub(1).unsqueeze(0)


def fast_paths(label: str, model: CycleGAN, size: int, reps: int, tmp: Path) -> list[dict]:
    G = model.G_AB.eval()
    x = pad_canvas(photo(size), *canvas_rules(model))
    base_t, base_y = time_fn(G, x, reps)
    ref = tensor_to_uint8(base_y).astype(np.int16)
    rows = [dict(model=label, size=size, path="eager float32", seconds=base_t, speedup=1.0, mad_grey=0.0)]

    def add(path: str, fn, inp=x, setup_s: float | None = None):
        try:
            t, y = time_fn(fn, inp, reps)
            y = torch.as_tensor(np.asarray(y)) if not isinstance(y, torch.Tensor) else y
            mad = float(np.abs(tensor_to_uint8(y.float()).astype(np.int16) - ref).mean())
            rows.append(dict(model=label, size=size, path=path, seconds=t, speedup=base_t / t, mad_grey=mad,
                             setup_s=setup_s))
        except Exception as e:
            rows.append(dict(model=label, size=size, path=path, error=f"{type(e).__name__}: {str(e)[:160]}"))
        print(f"  {rows[-1]}", file=sys.stderr)

    import copy
    cl = copy.deepcopy(G).to(memory_format=torch.channels_last)
    add("channels_last", cl, x.contiguous(memory_format=torch.channels_last))
    try:
        compiled = torch.compile(copy.deepcopy(G))
        t0 = time.perf_counter()
        with torch.inference_mode():
            compiled(x)
        add("torch.compile (inductor)", compiled, setup_s=time.perf_counter() - t0)
    except Exception as e:
        rows.append(dict(model=label, size=size, path="torch.compile (inductor)", error=f"{type(e).__name__}: {e}"[:200]))
    try:  # int8 static post-training quantization (FX graph mode, x86 backend), calibrated on this photo
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
        t0 = time.perf_counter()
        prepared = prepare_fx(copy.deepcopy(G), get_default_qconfig_mapping("x86"), (x,))
        with torch.inference_mode():
            prepared(x)
            prepared(torch.flip(x, [-1]))
        q = convert_fx(prepared)
        add("int8 (FX static quantization)", q, setup_s=time.perf_counter() - t0)
    except Exception as e:
        rows.append(dict(model=label, size=size, path="int8 (FX static quantization)",
                         error=f"{type(e).__name__}: {str(e)[:200]}"))
    try:
        import onnxruntime as ort
        onnx_path = tmp / f"{label}.onnx"
        t0 = time.perf_counter()
        torch.onnx.export(G, (x,), str(onnx_path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {2: "h", 3: "w"}, "y": {2: "h", 3: "w"}})
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        add("ONNX Runtime", lambda t: torch.from_numpy(sess.run(None, {"x": t.numpy()})[0]),
            setup_s=time.perf_counter() - t0)
    except Exception as e:
        rows.append(dict(model=label, size=size, path="ONNX Runtime", error=f"{type(e).__name__}: {str(e)[:200]}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["default", "reference"], choices=["default", "reference"])
    ap.add_argument("--fast-paths", action="store_true", help="also time faster CPU paths of one generator")
    ap.add_argument("--fast-reps", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="app-latency-"))
    models = {}
    if "default" in args.models:
        path = default_model_folder()
        if path is None:  # what the app falls back to
            random_model().save_pretrained(tmp / "fallback")
            path = tmp / "fallback"
        path = str(path)
        models["default"] = path
    if "reference" in args.models:
        torch.manual_seed(0)
        CycleGAN(ngf=64, n_blocks=9, with_discriminators=True).save_pretrained(tmp / "reference")
        models["reference"] = str(tmp / "reference")
    results = {"app": [], "fast_paths": []}
    for label, path in models.items():
        for size in args.sizes:
            results["app"].append(bench_app(label, path, size, args.requests, args.threads, tmp))
    if args.fast_paths:
        for label, path in models.items():
            for size in args.sizes:
                results["fast_paths"] += fast_paths(label, load_model(path), size, args.fast_reps, tmp)

    print(f"\nCPU, {args.threads} torch threads, {args.requests} requests each; times in seconds\n")
    print("| model | size | app: first image median / p95 | 1 generator pass | ratio (in-process) | "
          "app: whole panel median / p95 | 3 passes | ratio (in-process) | app peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results["app"]:
        print(f"| {r['model']} | {r['size']} | {r['first_median']:.2f} / {r['first_p95']:.2f} | "
              f"{r['one_pass_median']:.2f} | {r['first_ratio']:.2f}x ({r['inproc_first_ratio']:.2f}x) | "
              f"{r['panel_median']:.2f} / {r['panel_p95']:.2f} | {r['three_passes_median']:.2f} | "
              f"{r['panel_ratio']:.2f}x ({r['inproc_panel_ratio']:.2f}x) | {r['peak_rss_mb']:.0f} MB |")
    rows = [r for r in results["app"] if r.get("compare")]
    if rows:
        print("\n| Why both losses? | size | app median / p95 | the models' passes (3 each) | ratio |")
        print("| --- | --- | --- | --- | --- |")
        for r in rows:
            c = r["compare"]
            print(f"| {c['models']} ablation models | {r['size']} | {c['median']:.2f} / {c['p95']:.2f} | "
                  f"{c['passes_median']:.2f} | {c['ratio']:.2f}x |")
    if results["fast_paths"]:
        print("\n| model | size | path | one generator pass | speed-up | mean abs diff vs float32 (grey levels) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for r in results["fast_paths"]:
            if "error" in r:
                print(f"| {r['model']} | {r['size']} | {r['path']} | failed: {r['error']} | | |")
            else:
                setup = f" (+{r['setup_s']:.1f}s once)" if r.get("setup_s") else ""
                print(f"| {r['model']} | {r['size']} | {r['path']} | {r['seconds']:.3f}{setup} | "
                      f"{r['speedup']:.2f}x | {r['mad_grey']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
