"""Can one visitor take the app down? 16 concurrent clients for 60 s against `python app.py`.

    python bench/load_test.py                              # 16 clients, 60 s, the embedded default model
    python bench/load_test.py --clients 4 --seconds 15     # a quick check that it works

The app runs in a subprocess with its public-deployment defaults (one short request computed at a time, one
long job, queue of 32, 2 torch threads). Each client is its own gradio_client session and loops over a mix:
explains of 256-512 px images (most requests), loads of a good model, of hostile models (config.json asking for
"ngf": 1024, a weights file that does not match its config), and of a folder that does not exist; one client
asks for the full-resolution download of a 12-megapixel photo again and again (the long request).

Reported: server errors (a request that failed in a way that is not a one-line refusal, and every traceback in
the server log; the goal is zero), requests told "busy" (queue full), the short requests' latency (median and
p95) against the same explain on the idle server measured first in the same run (the baseline), the long
requests' times, the server's resident memory (after warm-up, peak, at the end) and the files in Gradio's cache.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(np.ceil(q / 100 * len(v))) - 1))] if v else float("nan")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_models(tmp: Path) -> dict[str, str]:
    """A good tiny model, two hostile folders and a missing one."""
    import torch
    from safetensors.torch import save_file
    from cyclegan import CycleGAN
    torch.manual_seed(0)
    good = tmp / "good"
    CycleGAN(name_A="cat", name_B="dog", ngf=8, n_blocks=3).save_pretrained(good)
    huge = tmp / "huge"
    huge.mkdir()
    cfg = json.loads((good / "config.json").read_text())
    (huge / "config.json").write_text(json.dumps({**cfg, "ngf": 1024}))
    save_file({"x": torch.zeros(4)}, str(huge / "model.safetensors"))
    mismatch = tmp / "mismatch"
    mismatch.mkdir()
    (mismatch / "config.json").write_text(json.dumps({**cfg, "ngf": 16}))
    (mismatch / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes())
    return {"good": str(good), "huge": str(huge), "mismatch": str(mismatch), "missing": str(tmp / "nowhere")}


def make_images(tmp: Path, rng: np.random.Generator) -> tuple[list[str], str]:
    try:
        from skimage import data
        base = Image.fromarray(data.chelsea())
    except Exception:
        base = Image.fromarray((rng.random((300, 451, 3)) * 255).astype(np.uint8))
    small = []
    for i, side in enumerate((256, 320, 384, 448, 512)):
        img = base.resize((side, int(side * 0.66))).rotate(i * 7)
        path = tmp / f"in{i}.jpg"
        img.save(path, quality=90)
        small.append(str(path))
    big = tmp / "big.jpg"
    base.resize((4240, 2832), Image.Resampling.BICUBIC).save(big, quality=90)     # 12 megapixels
    return small, str(big)


def start_app(tmp: Path, threads: int, model: str | None) -> tuple[subprocess.Popen, str, Path]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gradio_tmp = tmp / "gradio-cache"
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "CYCLEGAN_THREADS": str(threads),
           "GRADIO_TEMP_DIR": str(gradio_tmp), "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    if model:
        env["CYCLEGAN_MODEL"] = model
    log = tmp / "app.log"
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=tmp, env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url, gradio_tmp
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the app did not start")


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.rows: list[dict] = []

    def add(self, **row):
        with self.lock:
            self.rows.append(row)


def classify(e: Exception) -> str:
    """'busy' (queue full), 'refused' (the app's one-line message) or 'error' (anything else)."""
    text = str(e)
    if "Queue is full" in text:
        return "busy"
    if type(e).__name__ == "AppError" and text.strip().endswith(".") and "\n" not in text.strip():
        return "refused"
    return "error"


def client_loop(url: str, stop: float, results: Results, small: list[str], big: str, models: dict[str, str],
                seed: int, long_client: bool) -> None:
    from gradio_client import Client, handle_file
    rng = random.Random(seed)
    client = None
    while client is None and time.monotonic() < stop:   # connecting can time out on a saturated machine
        t0 = time.perf_counter()
        try:
            client = Client(url, verbose=False, download_files=False)
        except Exception as e:
            results.add(kind="connect (page config)", outcome="timeout" if "imeout" in type(e).__name__ else "error",
                        seconds=time.perf_counter() - t0, at=time.monotonic())
    while client is not None and time.monotonic() < stop:
        if long_client:
            kind, args, api = "full-resolution 12 MP", (handle_file(big), "AtoB"), "/full_resolution"
        else:
            r = rng.random()
            if r < 0.7:
                kind, api = "explain", "/explain"
                args = (handle_file(rng.choice(small)), rng.choice(["AtoB", "BtoA"]), rng.choice([0, 0, 8]), False)
            elif r < 0.8:
                kind, api, args = "load good model", "/load_model", (models["good"],)
            else:
                name = rng.choice(["huge", "mismatch", "missing"])
                kind, api, args = f"load hostile model ({name})", "/load_model", (models[name],)
        t0 = time.perf_counter()
        try:
            out = client.predict(*args, api_name=api)
            outcome = "ok"
            if api == "/load_model":   # the handler answers a refusal in the page's status line
                status = out[0] if isinstance(out, (list, tuple)) else out
                outcome = "ok" if str(status).startswith("Loaded") else "refused"
                if outcome == "refused" and ("\n" in str(status) or not str(status).endswith(".")):
                    outcome = "error"
        except Exception as e:
            outcome = "timeout" if "imeout" in type(e).__name__ else classify(e)
            if outcome == "error":
                print(f"  {kind}: {type(e).__name__}: {str(e)[:200]}", file=sys.stderr)
        results.add(kind=kind, outcome=outcome, seconds=time.perf_counter() - t0, at=time.monotonic())
        if long_client and outcome != "ok":
            time.sleep(1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=2, help="the app's torch threads")
    ap.add_argument("--model", default=None, help="the app's model (default: the embedded default)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="load-test-"))
    rng = np.random.default_rng(0)
    models = make_models(tmp)
    small, big = make_images(tmp, rng)
    proc, url, gradio_tmp = start_app(tmp, args.threads, args.model)
    try:
        from gradio_client import Client, handle_file
        warm = Client(url, verbose=False, download_files=False)
        baseline = []
        for i in range(6):                       # the same explains on the idle server: the baseline
            t0 = time.perf_counter()
            warm.predict(handle_file(small[i % len(small)]), "AtoB", 0, False, api_name="/explain")
            baseline.append(time.perf_counter() - t0)
        baseline = baseline[1:]
        rss_start = rss_mb(proc.pid)
        memory = []
        results = Results()
        stop = time.monotonic() + args.seconds
        threads = [threading.Thread(target=client_loop, args=(url, stop, results, small, big, models, i, i == 0))
                   for i in range(args.clients)]
        load_before = os.getloadavg()
        t_start = time.monotonic()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            memory.append((time.monotonic() - t_start, rss_mb(proc.pid)))
            time.sleep(1.0)
        for t in threads:
            t.join()
        rss_end = rss_mb(proc.pid)
        peak = rss_mb(proc.pid, "VmHWM")
        cache_files = sum(1 for p in gradio_tmp.rglob("*") if p.is_file()) if gradio_tmp.exists() else 0
    finally:
        proc.terminate()
        proc.wait(30)
    log = (tmp / "app.log").read_text()
    tracebacks = log.count("Traceback (most recent call last)")
    rows = results.rows
    short = [r["seconds"] for r in rows if r["kind"] == "explain" and r["outcome"] == "ok"]
    errors = [r for r in rows if r["outcome"] == "error"]
    base = statistics.median(baseline)
    print(f"\n{args.clients} clients for {args.seconds:g} s against app.py ({args.threads} torch threads); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average before "
          f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}\n")
    print("| request | sent | ok | refused (one line) | told busy | client timeout | server errors | median s | p95 s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in sorted({r["kind"] for r in rows}):
        rs = [r for r in rows if r["kind"] == kind]
        secs = [r["seconds"] for r in rs if r["outcome"] in ("ok", "refused")]
        count = {o: sum(r["outcome"] == o for r in rs) for o in ("ok", "refused", "busy", "timeout", "error")}
        print(f"| {kind} | {len(rs)} | {count['ok']} | {count['refused']} | {count['busy']} | {count['timeout']} | "
              f"{count['error']} | "
              f"{statistics.median(secs) if secs else float('nan'):.2f} | {pct(secs, 95):.2f} |")
    p95 = pct(short, 95)
    print(f"\nshort requests (explain): median {statistics.median(short) if short else float('nan'):.2f} s, "
          f"p95 {p95:.2f} s; the same explain on the idle server (baseline, median of 5): {base:.2f} s; "
          f"p95 / baseline = {p95 / base:.1f}x")
    print(f"server errors: {len(errors)} failed requests, {tracebacks} tracebacks in the server log")
    print(f"server memory (RSS): {rss_start:.0f} MB after warm-up, {max(m for _, m in memory):.0f} MB at most "
          f"during the run (peak ever {peak:.0f} MB), {rss_end:.0f} MB at the end")
    print(f"files in Gradio's cache at the end: {cache_files} (deleted after CYCLEGAN_CACHE_TTL)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "baseline": baseline, "memory": memory,
                                               "tracebacks": tracebacks}, indent=1))


if __name__ == "__main__":
    main()
