"""The app built in-process (`app.build_demo`) and served on 127.0.0.1, driven with gradio_client like any API user;
one test starts `python app.py` itself. Tiny models (ngf 8, 3 blocks) keep it fast."""
from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan import CycleGAN

ROOT = Path(__file__).resolve().parents[1]
MAX_SIDE = 128
MAX_PIXELS = 1_000_000
# /explain's outputs, in the order gradio_client returns them
OUT = {k: i for i, k in enumerate(["real", "fake", "rec", "idt", "cycle", "identity", "realness", "error_bar",
                                   "realness_bar", "numbers", "numbers_json", "slider", "status", "sidebar"])}
PANELS = ["real", "fake", "rec", "idt", "cycle", "identity", "realness"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_model(folder: Path, name_A="horse", name_B="zebra", with_discriminators=True, seed=0) -> Path:
    torch.manual_seed(seed)
    CycleGAN(name_A=name_A, name_B=name_B, ngf=8, n_blocks=3, ndf=8,
             with_discriminators=with_discriminators).save_pretrained(folder)
    return folder


@contextlib.contextmanager
def served(model_dir: Path | None, tmp: Path, **settings):
    """The app built in this process from Settings(**settings) and served on a free port; yields (url, demo)."""
    import app
    base = dict(model=str(model_dir) if model_dir else "", max_side=MAX_SIDE, max_pixels=MAX_PIXELS,
                max_file_size="1mb", threads=1, models_dir=tmp / "no-models", examples=tmp / "no-examples",
                released_cache=tmp / "released")       # the app's own default engine (auto: ONNX Runtime here)
    s = app.Settings.from_env({}, **{**base, **settings})
    demo = app.build_demo(s)
    port = free_port()
    app.serve(demo, s, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", demo
    finally:
        demo.close()
        demo.cyclegan_app.panels.close()


def start_app(model_dir: Path, log: Path, **env) -> tuple[subprocess.Popen, str]:
    """Starts `python app.py` on a free port; returns (process, url) once it answers."""
    port = free_port()
    full_env = {**os.environ, "CYCLEGAN_MODEL": str(model_dir), "GRADIO_SERVER_PORT": str(port),
                "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                "CYCLEGAN_MAX_SIDE": str(MAX_SIDE), "CYCLEGAN_MAX_PIXELS": str(MAX_PIXELS),
                "CYCLEGAN_MAX_FILE_SIZE": "1mb", "CYCLEGAN_THREADS": "1", "PYTHONUNBUFFERED": "1",
                **{k: str(v) for k, v in env.items()}}
    out = open(log, "w")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=log.parent, env=full_env, stdout=out,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"app.py did not answer within 180 s:\n{log.read_text()[-3000:]}")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    with served(tiny_model(tmp / "model"), tmp, keep_models=1) as (url, _):
        yield url, tmp


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client
    return Client(app_url[0], verbose=False)


def write(path: Path, img: Image.Image, fmt: str | None = None, **kw) -> str:
    img.save(path, fmt, **kw)
    return str(path)


def rand_image(w, h, mode="RGB", seed=0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)).convert(mode)


def explain(client, path: str, direction="AtoB", noise=0, overlay=False):
    from gradio_client import handle_file
    return client.predict(handle_file(path), direction, noise, overlay, api_name="/explain")


def check_good(result, size):
    for name in PANELS:
        img = Image.open(result[OUT[name]])
        assert img.format == "PNG" and img.size == size, (name, img.format, img.size)
        assert np.asarray(img).std() > 0 or name in ("cycle", "identity", "realness"), name
    for name in ("error_bar", "realness_bar"):
        assert Image.open(result[OUT[name]]).format == "PNG"
    assert "cycle L1" in result[OUT["numbers"]] and "PSNR" in result[OUT["numbers"]]
    numbers = result[OUT["numbers_json"]]
    assert (numbers["width"], numbers["height"]) == size
    for key in ("cycle_l1", "identity_l1", "cycle_term", "identity_term", "gan_term", "psnr_reconstruction_db"):
        assert isinstance(numbers[key], float), key
    before, after = result[OUT["slider"]]
    assert Image.open(before).size == size and Image.open(after).size == size


def test_importing_the_app_starts_nothing(tmp_path):
    # No server, no model, no folder, no thread setting and no environment change at import time.
    code = """
import os, socket, sys, threading
import torch
threads, env, before = torch.get_num_threads(), dict(os.environ), set(threading.enumerate())
import cyclegan.model as m
built = []
init = m.CycleGAN.__init__
m.CycleGAN.__init__ = lambda self, *a, **k: (built.append(1), init(self, *a, **k))[1]
import app
assert not built, "a model was built at import"
assert torch.get_num_threads() == threads, "torch threads changed at import"
assert dict(os.environ) == env, "os.environ changed at import"
new = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
assert not any("uvicorn" in n.lower() or "server" in n.lower() for n in new), new
print("ok")
"""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT),
           "GRADIO_TEMP_DIR": str(tmpdir / "gradio")}
    r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
    assert not list(tmpdir.iterdir()), sorted(p.name for p in tmpdir.iterdir())
    assert not list(work.iterdir()), sorted(p.name for p in work.iterdir())


def test_every_panel_comes_back_with_the_right_size(app_url, client):
    tmp = app_url[1]
    check_good(explain(client, write(tmp / "wide.jpg", rand_image(300, 200))), (128, 85))
    check_good(explain(client, write(tmp / "small.png", rand_image(37, 23, seed=1)), "BtoA"), (37, 23))


def test_labels_follow_the_direction(app_url, client):
    path = write(app_url[1] / "dir.png", rand_image(40, 30, seed=9))
    forward, backward = explain(client, path, "AtoB"), explain(client, path, "BtoA")
    assert "**G_AB** (horse → zebra)" in forward[OUT["sidebar"]]
    assert "**G_AB** translates and **G_BA** maps back" in forward[OUT["sidebar"]]
    assert "**G_BA** translates and **G_AB** maps back" in backward[OUT["sidebar"]]
    assert "G_AB(G_BA(x))" in backward[OUT["numbers"]] and "D_A(G_BA(x))" in backward[OUT["numbers"]]
    assert "G_BA(G_AB(x))" in forward[OUT["numbers"]] and "D_B(G_AB(x))" in forward[OUT["numbers"]]


def test_results_stream_g_of_x_first_and_every_streamed_file_downloads_whole(app_url, client):
    # The same picture four times: G(x) goes out in the first message and again in the last, and the client
    # downloads the first copy while the server writes the second.
    from gradio_client import handle_file
    for i in range(4):
        job = client.submit(handle_file(write(app_url[1] / f"s{i}.png", rand_image(64, 48, seed=2))), "AtoB", 0,
                            False, api_name="/explain")
        job.result(timeout=120)
        outputs = job.outputs()
        assert len(outputs) >= 2
        assert outputs[0][OUT["fake"]] is not None and outputs[0][OUT["rec"]] is None    # G(x) alone first
        assert all(outputs[-1][OUT[k]] is not None for k in PANELS)
        for k in ("real", "fake"):
            assert Image.open(outputs[0][OUT[k]]).size == (64, 48)


def test_awkward_images_work(app_url, client):
    tmp = app_url[1]
    rotated = rand_image(60, 40)
    exif = rotated.getexif()
    exif[0x0112] = 6
    cases = [
        (write(tmp / "one.png", rand_image(1, 1)), (1, 1)),
        (write(tmp / "rot.jpg", rotated, exif=exif), (40, 60)),
        (write(tmp / "cmyk.jpg", rand_image(30, 20, "CMYK")), (30, 20)),
        (write(tmp / "deep.png", Image.fromarray(np.full((20, 30), 50000, np.uint16))), (30, 20)),
        (write(tmp / "anim.gif", rand_image(30, 20, "P"), save_all=True,
               append_images=[rand_image(30, 20, "P", seed=1)]), (30, 20)),
        (write(tmp / "rgba.png", rand_image(30, 20, "RGBA")), (30, 20)),
    ]
    for path, size in cases:
        result = explain(client, path)
        for name in PANELS:
            assert Image.open(result[OUT[name]]).size == size, (path, name)


def test_bad_inputs_give_one_sentence_and_no_traceback_and_the_next_request_works(app_url, client, capfd, caplog):
    from gradio_client.exceptions import AppError
    tmp = app_url[1]
    png = io.BytesIO()
    rand_image(64, 64).save(png, "PNG")
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "text.png").write_text("this is not an image")
    (tmp / "cut.png").write_bytes(png.getvalue()[:400])
    Image.new("L", (2000, 1000)).save(tmp / "bomb.png")       # 2 megapixels, a few kB: over the pixel limit
    cases = {"empty.png": "the file is empty", "text.png": "not an image", "cut.png": "corrupt or truncated",
             "bomb.png": "more than the limit"}
    good = write(tmp / "good.png", rand_image(40, 30, seed=4))
    capfd.readouterr()
    for name, message in cases.items():
        with pytest.raises(AppError, match=message) as info:
            explain(client, str(tmp / name))
        text = str(info.value)
        assert str(tmp) not in text and "/tmp/gradio" not in text
        assert text.endswith(".") and not text.endswith(".."), text
        check_good(explain(client, good), (40, 30))
    log = "".join(capfd.readouterr())
    assert "Traceback" not in log, log[-2000:]
    refused = [r.getMessage() for r in caplog.records if r.name == "cyclegan.app"]
    assert len(refused) == len(cases) and all(m.startswith("refused: That file cannot be used") for m in refused)
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"


def test_upload_limit_is_enforced_by_the_server(app_url):
    import httpx
    data = os.urandom(1_200_000)                             # over max_file_size=1mb
    r = httpx.post(app_url[0] + "gradio_api/upload", files={"files": ("big.png", data, "image/png")}, timeout=60)
    assert r.status_code == 413


def test_noise_and_overlay(app_url, client):
    path = write(app_url[1] / "n.png", rand_image(48, 48, seed=6))
    clean, noisy = explain(client, path), explain(client, path, noise=20)
    n = OUT["numbers_json"]
    assert noisy[n]["cycle_l1_without_noise"] == pytest.approx(clean[n]["cycle_l1"], rel=1e-5)
    assert not np.array_equal(np.asarray(Image.open(clean[OUT["rec"]])), np.asarray(Image.open(noisy[OUT["rec"]])))
    over = explain(client, path, overlay=True)
    assert not np.array_equal(np.asarray(Image.open(clean[OUT["cycle"]])), np.asarray(Image.open(over[OUT["cycle"]])))


def test_full_resolution_download_has_the_uploads_size(app_url, client):
    from gradio_client import handle_file
    path = write(app_url[1] / "big.png", rand_image(300, 210, seed=8))      # larger than the 128 px panels
    files, status = client.predict(handle_file(path), "AtoB", api_name="/full_resolution")
    assert len(files) == 2 and "300×210" in status and status.endswith(".")
    for f in files:
        img = Image.open(f)
        assert img.format == "PNG" and img.size == (300, 210)
    panel = explain(client, path)                                         # the panels stay at display size
    assert Image.open(panel[OUT["fake"]]).size == (128, 90)


def test_loading_models_per_session_and_reloading_an_evicted_one(app_url, client, tmp_path):
    from gradio_client import Client
    cat = tiny_model(tmp_path / "catdog", "cat", "dog", with_discriminators=False, seed=1)
    owl = tiny_model(tmp_path / "owl", "owl", "bat", seed=2)
    c = Client(app_url[0], verbose=False)                        # its own session: its own model choice
    path = write(app_url[1] / "m.png", rand_image(40, 40, seed=7))
    before = explain(c, path)
    status = c.predict(str(tmp_path / "nowhere"), api_name="/load_model")[0]
    assert "previous" in status or "Still using" in status, status
    assert explain(c, path)[OUT["numbers_json"]]["cycle_l1"] == pytest.approx(before[OUT["numbers_json"]]["cycle_l1"])
    status = c.predict(str(cat), api_name="/load_model")[0]
    assert status.startswith("Loaded") and status.endswith("."), status
    after = explain(c, path)
    assert "gan_term" not in after[OUT["numbers_json"]] and after[OUT["realness"]] is None   # no discriminator
    assert "cat" in after[OUT["sidebar"]] and "dog" in after[OUT["sidebar"]]
    assert explain(client, path)[OUT["numbers_json"]]["cycle_l1"] == pytest.approx(
        before[OUT["numbers_json"]]["cycle_l1"])                                         # others unaffected
    # keep_models=1: another session's choice evicts cat/dog; this session gets it back, not the default
    Client(app_url[0], verbose=False).predict(str(owl), api_name="/load_model")
    again = explain(c, path)
    assert again[OUT["numbers_json"]]["cycle_l1"] == pytest.approx(after[OUT["numbers_json"]]["cycle_l1"])
    assert again[OUT["status"]] == ""
    # evicted and gone from disk: the page says it fell back
    Client(app_url[0], verbose=False).predict(str(tiny_model(tmp_path / "emu", "emu", "elk", seed=3)),
                                              api_name="/load_model")
    import shutil
    shutil.rmtree(cat)
    fallback = explain(c, path)
    assert "default model" in fallback[OUT["status"]] and "could not be loaded again" in fallback[OUT["status"]]
    assert "horse" in fallback[OUT["sidebar"]]


def test_model_box_settings(tmp_path):
    from gradio_client import Client
    other = tiny_model(tmp_path / "other", "cat", "dog", seed=1)
    for box, allowed in (("off", False), ("allowlist", False), ("open", True)):
        with served(tiny_model(tmp_path / "model"), tmp_path, model_box=box) as (url, _):
            status = Client(url, verbose=False).predict(str(other), api_name="/load_model")[0]
            assert status.startswith("Loaded") == allowed, (box, status)
            if not allowed:
                assert "this server" in status and status.endswith("."), status
    with served(tiny_model(tmp_path / "model"), tmp_path, model_box="allowlist", model_allow=(str(other),)) as (url, _):
        assert Client(url, verbose=False).predict(str(other), api_name="/load_model")[0].startswith("Loaded")


def test_uploads_and_outputs_expire(tmp_path):
    from gradio_client import Client
    with served(tiny_model(tmp_path / "model"), tmp_path, cache_ttl_s=2) as (url, demo):
        page = urllib.request.urlopen(url + "config", timeout=30).read().decode()
        assert "Uploads and results are deleted from the server after 2 seconds." in page
        explain(Client(url, verbose=False, download_files=False),
                         write(tmp_path / "x.png", rand_image(40, 30)))
        cached = [Path(f) for s in demo.temp_file_sets for f in s]
        assert len(cached) >= 8, cached                      # the upload and every panel
        assert all(p.exists() for p in cached)
        time.sleep(6)
        assert not [p for p in cached if p.exists()], "files outlived the expiry"


def test_a_visitor_over_the_queue_size_is_told_the_server_is_busy(tmp_path):
    from gradio_client import Client, handle_file
    with served(tiny_model(tmp_path / "model"), tmp_path, queue_size=1, max_side=512) as (url, _):
        path = write(tmp_path / "q.png", rand_image(512, 512))
        clients = [Client(url, verbose=False) for _ in range(8)]     # connected first, then all at once
        jobs = [c.submit(handle_file(path), "AtoB", 0, False, api_name="/explain") for c in clients]
        errors = []
        for job in jobs:
            try:
                job.result(timeout=120)
            except Exception as e:
                errors.append(e)
        assert errors and all("Queue is full" in str(e) for e in errors), errors
        assert len(errors) < len(jobs)


def test_why_both_losses_compares_the_shipped_ablations(client, app_url):
    from gradio_client import handle_file
    import app
    with served(None, app_url[1], models_dir=ROOT / "models") as (url, _):
        from gradio_client import Client
        c = Client(url, verbose=False)
        path = write(app_url[1] / "compare.png", rand_image(60, 40, seed=3))
        out = c.predict(handle_file(path), "AtoB", api_name="/compare")
        assert len(out) == 3 * len(app.ABLATIONS)              # G(x), F(G(x)) and the cycle error of each
        for i, name in enumerate(app.ABLATIONS):
            fake, rec, numbers = out[3 * i:3 * i + 3]
            for f in (fake, rec):
                img = Image.open(f)
                assert img.format == "PNG" and img.size == (60, 40)
            assert numbers.startswith("cycle L1 ") and numbers.endswith(f"on this image at 60x40 px ({app.ABLATIONS[name]})")
        not_an_image = app_url[1] / "notes.png"
        not_an_image.write_text("not an image")
        with pytest.raises(Exception, match="cannot be used"):
            c.predict(handle_file(str(not_an_image)), "AtoB", api_name="/compare")


# -- released pairs from a local mirror -------------------------------------------------------------------------
def mirror_of_horse2zebra(tmp: Path):
    """A started tests/released_mirror.Mirror serving tiny stand-ins (ngf 8, 2 blocks) of the horse <-> zebra pair."""
    from released_mirror import Mirror, write_standins
    write_standins(tmp / "mirror", ["horse2zebra", "zebra2horse"], ngf=8, n_blocks=2)
    return Mirror(tmp / "mirror").start()


def downloads(mirror) -> dict[str, int]:
    """GET requests per path the mirror answered."""
    out: dict[str, int] = {}
    for method, path, _ in mirror.requests:
        if method == "GET":
            out[path] = out.get(path, 0) + 1
    return out


def test_released_pair_downloads_once_and_answers_with_its_domain_names(tmp_path, monkeypatch):
    from gradio_client import Client
    mirror = mirror_of_horse2zebra(tmp_path)
    monkeypatch.setenv("CYCLEGAN_PRETRAINED_URL", mirror.url)
    try:
        with served(tiny_model(tmp_path / "model", "photo", "sketch"), tmp_path) as (url, _):
            clients = [Client(url, verbose=False) for _ in range(2)]
            jobs = [c.submit("released/horse2zebra", api_name="/pick_model") for c in clients]
            statuses = [j.result(timeout=120)[0] for j in jobs]
            assert all(s.startswith("Loaded") for s in statuses), statuses
            assert downloads(mirror) == {"/horse2zebra.pth": 1, "/zebra2horse.pth": 1}, mirror.requests
            path = write(tmp_path / "h.png", rand_image(50, 40, seed=5))
            result = explain(clients[0], path, "BtoA")
            for name in ("real", "fake", "rec", "idt", "cycle", "identity"):
                assert Image.open(result[OUT[name]]).size == (50, 40), name
            assert "zebra → horse" in result[OUT["sidebar"]]
    finally:
        mirror.stop()


def test_released_pair_offline_says_so_and_the_previous_model_answers(tmp_path, monkeypatch):
    from gradio_client import Client
    monkeypatch.setenv("CYCLEGAN_PRETRAINED_URL", f"http://127.0.0.1:{free_port()}")   # nothing listens there
    with served(tiny_model(tmp_path / "model", "photo", "sketch"), tmp_path) as (url, _):
        c = Client(url, verbose=False)
        path = write(tmp_path / "p.png", rand_image(40, 30))
        before = explain(c, path)
        status = c.predict("released/horse2zebra", api_name="/pick_model")[0]
        assert "download" in status and "Still using" in status and "\n" not in status, status
        after = explain(c, path)
        assert after[OUT["numbers_json"]]["cycle_l1"] == pytest.approx(before[OUT["numbers_json"]]["cycle_l1"])
        assert "photo" in after[OUT["sidebar"]]


def test_stopping_the_app_with_sigterm_removes_its_panel_files(tmp_path):
    # `python app.py` itself; a Space restart or `docker stop` sends SIGTERM, and the panel folder must not outlive it.
    from gradio_client import Client
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc, url = start_app(tiny_model(tmp_path / "model"), tmp_path / "app.log", TMPDIR=tmpdir)
    try:
        explain(Client(url, verbose=False), write(tmp_path / "x.png", rand_image(40, 30)))
        assert list(tmpdir.glob("cyclegan-panels-*/*/*.png")), sorted(p.name for p in tmpdir.iterdir())
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, (tmp_path / "app.log").read_text()[-2000:]
    assert not list(tmpdir.glob("cyclegan-panels-*")), "the panel folder outlived the app"


def test_onnx_runtime_is_the_default_engine_and_serves_the_panels_and_the_full_resolution_download(tmp_path):
    pytest.importorskip("onnxruntime")              # the app install (requirements.txt, .[app]) brings it
    from gradio_client import Client, handle_file
    with served(tiny_model(tmp_path / "model"), tmp_path) as (url, demo):
        assert "ONNX Runtime" in demo.cyclegan_app.models.get("default")[0].model.source
        c = Client(url, verbose=False)
        path = write(tmp_path / "o.png", rand_image(150, 100, seed=11))
        check_good(explain(c, path), (128, 85))
        files, _ = c.predict(handle_file(path), "AtoB", api_name="/full_resolution")   # tiled runs PyTorch
        assert [Image.open(f).size for f in files] == [(150, 100)] * 2


def test_cyclegan_backend_torch_keeps_pytorch(tmp_path):
    from gradio_client import Client
    with served(tiny_model(tmp_path / "model"), tmp_path, backend="torch") as (url, demo):
        assert "ONNX Runtime" not in demo.cyclegan_app.models.get("default")[0].model.source
        check_good(explain(Client(url, verbose=False), write(tmp_path / "t.png", rand_image(64, 48))), (64, 48))


def test_ablation_models_are_weighted_as_they_were_trained(tmp_path):
    # models/ablation/gan_alone was trained without cycle terms: its table must not weigh one (issue 12).
    from gradio_client import Client
    if not (ROOT / "models" / "ablation" / "gan_alone" / "config.json").is_file():
        pytest.skip("no shipped ablation models")
    with served(None, tmp_path, models_dir=ROOT / "models") as (url, _):
        c = Client(url, verbose=False)
        assert c.predict("ablation/gan_alone", api_name="/pick_model")[0].startswith("Loaded")
        table = explain(c, write(tmp_path / "g.png", rand_image(48, 40)))[OUT["numbers"]]
        cycle_row = next(line for line in table.splitlines() if line.startswith("| cycle L1"))
        assert "not in this model's objective" in cycle_row and "×" not in cycle_row, cycle_row
        assert c.predict("ablation/full", api_name="/pick_model")[0].startswith("Loaded")
        table = explain(c, write(tmp_path / "g.png", rand_image(48, 40)))[OUT["numbers"]]
        assert "λ_A × cycle = 20 ×" in table


def test_what_the_model_has_seen_and_the_note_for_an_unfamiliar_image(tmp_path):
    # The model folder ships training_examples/<domain>_*.jpg and reference.json (its held-out cycle error).
    import json
    from gradio_client import Client
    model = tiny_model(tmp_path / "model", "photo", "sketch")
    (model / "training_examples").mkdir()
    for i, domain in enumerate(["photo", "photo", "sketch"]):
        rand_image(40, 30, seed=i).save(model / "training_examples" / f"{domain}_{i:02d}_x.jpg")
    (model / "reference.json").write_text(json.dumps({"AtoB": {"mean": 0.01, "max": 0.02},
                                                      "BtoA": {"mean": 10.0, "max": 12.0}}))
    other = tiny_model(tmp_path / "other", "cat", "dog", seed=1)
    with served(model, tmp_path) as (url, _):
        c = Client(url, verbose=False)
        path = write(tmp_path / "u.png", rand_image(40, 30, seed=9))
        note = explain(c, path, "AtoB")[OUT["status"]]          # a random model is far above 0.01
        assert note.startswith("⚠️ This image's cycle error") and note.endswith(".") and "held-out" in note
        assert explain(c, path, "BtoA")[OUT["status"]] == ""    # below the reference: no note
        strip = c.predict(str(model), api_name="/load_model")[4]
        assert len(strip["value"]) == 3 and "2 of its photo images" in strip["label"], strip
        strip = c.predict(str(other), api_name="/load_model")[4]
        assert not strip["value"] and "ships no training examples" in strip["label"], strip


def test_the_hidden_information_panel_says_what_the_shipped_models_show():
    """The page says the shipped photo2sketch models show no jump (noise up to 16 grey levels on G(x) changes the
    cycle L1 by less than 5% on average). Checked on the examples at 128 px: if a retrained model starts hiding
    information in G(x), this fails and the panel's wording must change with it (issue 16)."""
    import app
    from cyclegan.explain import explain
    from cyclegan.loading import load_model

    assert "less than 5%" in app.HIDDEN
    folders = [ROOT / "models" / "photo2sketch"] + sorted(p for p in (ROOT / "models" / "ablation").iterdir()
                                                          if (p / "config.json").is_file())
    photos = sorted((ROOT / "examples" / "photo").glob("*.*"))[:3]
    assert len(folders) == 7 and photos
    for folder in folders:
        model = load_model(str(folder))
        clean = np.mean([explain(model, p, "AtoB", max_side=128).numbers["cycle_l1"] for p in photos])
        noisy = np.mean([explain(model, p, "AtoB", max_side=128, noise=16.0).numbers["cycle_l1"] for p in photos])
        assert noisy / clean < 1.05, (folder.name, clean, noisy)   # the page's "less than 5%" (measured at full size)


def test_ablations_show_the_training_photos_of_the_default_they_share():
    # The ablations were trained on the default's data (scripts/photo2sketch.sh ablation): the strip under each
    # ablation is the default's, not an empty one and not a stale strip of another data set.
    import app
    from cyclegan.loading import load_model
    folder = ROOT / "models" / "ablation" / "full"
    if not (folder / "config.json").is_file():
        pytest.skip("no shipped ablation models")
    default = app.Entry(load_model(str(ROOT / "models" / "photo2sketch")), "default", "embedded",
                        ROOT / "models" / "photo2sketch")
    ablation = app.Entry(load_model(str(folder)), "ablation", "ablation", folder)
    strip = app.training_examples(ablation, default)
    assert strip and strip == app.training_examples(default, default)
    assert set(strip) == {"photo", "sketch"}
