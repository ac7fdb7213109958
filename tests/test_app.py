"""app.py launched on 127.0.0.1 in a subprocess, driven with gradio_client like any API user."""
from __future__ import annotations

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_model(folder: Path, name_A="horse", name_B="zebra", with_discriminators=True, seed=0) -> Path:
    torch.manual_seed(seed)
    CycleGAN(name_A=name_A, name_B=name_B, ngf=8, n_blocks=3, ndf=8,
             with_discriminators=with_discriminators).save_pretrained(folder)
    return folder


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
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    model_dir = tiny_model(tmp / "model")
    proc, url = start_app(model_dir, tmp / "app.log")
    yield url, tmp
    stop_app(proc)


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client
    return Client(app[0], verbose=False)


def write(path: Path, img: Image.Image, fmt: str | None = None, **kw) -> str:
    img.save(path, fmt, **kw)
    return str(path)


def rand_image(w, h, mode="RGB", seed=0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)).convert(mode)


def explain(client, path: str, direction="AtoB", noise=0, overlay=False):
    from gradio_client import handle_file
    return client.predict(handle_file(path), direction, noise, overlay, api_name="/explain")


PANELS = range(7)   # x, G(x), F(G(x)), F(x), cycle error, identity error, realness


def check_good(result, size):
    for i in PANELS:
        img = Image.open(result[i])
        assert img.format == "PNG" and img.size == size, (i, img.format, img.size)
        assert np.asarray(img).std() > 0 or i >= 4, i
    for i in (7, 8):                                   # the two colour bars
        assert Image.open(result[i]).format == "PNG"
    assert "cycle L1" in result[9] and "PSNR" in result[9]
    numbers = result[10]
    assert (numbers["width"], numbers["height"]) == size
    for key in ("cycle_l1", "identity_l1", "cycle_term", "identity_term", "gan_term", "psnr_reconstruction_db"):
        assert isinstance(numbers[key], float), key
    before, after = result[11]
    assert Image.open(before).size == size and Image.open(after).size == size


def test_every_panel_comes_back_with_the_right_size(app, client):
    tmp = app[1]
    check_good(explain(client, write(tmp / "wide.jpg", rand_image(300, 200))), (128, 85))
    check_good(explain(client, write(tmp / "small.png", rand_image(37, 23, seed=1)), "BtoA"), (37, 23))


def test_results_stream_g_of_x_first_and_every_streamed_file_downloads_whole(app, client):
    # The same picture four times: G(x) goes out in the first message and again in the last, and the client
    # downloads the first copy while the server writes the second (a truncated download came back as an
    # exception in job.outputs() when the server rewrote its cached file in place).
    from gradio_client import handle_file
    for i in range(4):
        job = client.submit(handle_file(write(app[1] / f"s{i}.png", rand_image(64, 48, seed=2))), "AtoB", 0, False,
                            api_name="/explain")
        job.result(timeout=120)
        outputs = job.outputs()
        assert len(outputs) >= 2
        assert all(isinstance(o, tuple) and len(o) == 12 for o in outputs), [repr(o)[:200] for o in outputs]
        assert outputs[0][1] is not None and outputs[0][2] is None          # G(x) alone first
        assert all(v is not None for v in outputs[-1][:9])
        for path in (outputs[0][0], outputs[0][1]):
            assert Image.open(path).size == (64, 48)


def test_awkward_images_work(app, client):
    tmp = app[1]
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
        for i in PANELS:
            assert Image.open(result[i]).size == size, (path, i)


def test_bad_inputs_give_their_message_and_the_next_request_works(app, client):
    from gradio_client.exceptions import AppError
    tmp = app[1]
    png = io.BytesIO()
    rand_image(64, 64).save(png, "PNG")
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "text.png").write_text("this is not an image")
    (tmp / "cut.png").write_bytes(png.getvalue()[:400])
    big = tmp / "bomb.png"
    Image.new("L", (2000, 1000)).save(big)                   # 2 megapixels, a few kB: over the pixel limit
    cases = {"empty.png": "the file is empty", "text.png": "not an image", "cut.png": "corrupt or truncated",
             "bomb.png": "more than the limit"}
    good = write(tmp / "good.png", rand_image(40, 30, seed=4))
    for name, message in cases.items():
        with pytest.raises(AppError, match=message) as info:
            explain(client, str(tmp / name))
        assert str(tmp) not in str(info.value) and "/tmp/gradio" not in str(info.value)
        check_good(explain(client, good), (40, 30))


def test_upload_limit_is_enforced_by_the_server(app):
    import httpx
    data = os.urandom(1_200_000)                             # over CYCLEGAN_MAX_FILE_SIZE=1mb
    r = httpx.post(app[0] + "gradio_api/upload", files={"files": ("big.png", data, "image/png")}, timeout=60)
    assert r.status_code == 413


def test_noise_and_overlay(app, client):
    path = write(app[1] / "n.png", rand_image(48, 48, seed=6))
    clean, noisy = explain(client, path), explain(client, path, noise=20)
    assert "cycle_l1_without_noise" in noisy[10]
    assert noisy[10]["cycle_l1_without_noise"] == pytest.approx(clean[10]["cycle_l1"], rel=1e-5)
    assert not np.array_equal(np.asarray(Image.open(clean[2])), np.asarray(Image.open(noisy[2])))
    over = explain(client, path, overlay=True)
    assert not np.array_equal(np.asarray(Image.open(clean[4])), np.asarray(Image.open(over[4])))


def test_loading_models(app, client, tmp_path):
    from gradio_client import Client
    other = tiny_model(tmp_path / "catdog", "cat", "dog", with_discriminators=False, seed=1)
    c = Client(app[0], verbose=False)                        # its own session: its own model choice
    path = write(app[1] / "m.png", rand_image(40, 40, seed=7))
    before = explain(c, path)
    status = c.predict(str(tmp_path / "nowhere"), api_name="/load_model")
    assert "neither a local folder nor a Hub repo id" in status[0] and "previous model" in status[0]
    assert explain(c, path, noise=1)[10]["cycle_l1_without_noise"] == pytest.approx(before[10]["cycle_l1"])
    status = c.predict(str(other), api_name="/load_model")
    assert status[0].startswith("Loaded") and "cat" in status[1] and "dog" in status[1]
    after = explain(c, path)
    assert "gan_term" not in after[10] and after[6] is None                # no discriminator in that one
    assert explain(client, path)[10]["cycle_l1"] == pytest.approx(before[10]["cycle_l1"])  # others unaffected


def test_why_both_losses_compares_the_shipped_ablations(app, client):
    from gradio_client import handle_file
    from app import ABLATIONS
    path = write(app[1] / "compare.png", rand_image(60, 40, seed=3))
    gallery = client.predict(handle_file(path), "AtoB", api_name="/compare")
    assert len(gallery) == 2 * len(ABLATIONS)   # G(x) and F(G(x)) for each objective
    captions = [item["caption"] for item in gallery]
    assert captions[0] == "cycle alone: G(x)" and captions[-1].startswith("full CycleGAN: F(G(x)), cycle L1 ")
    for item in gallery:
        img = Image.open(item["image"])
        assert img.format == "PNG" and img.size == (60, 40)
    not_an_image = app[1] / "notes.png"
    not_an_image.write_text("not an image")
    with pytest.raises(Exception, match="cannot be used"):
        client.predict(handle_file(str(not_an_image)), "AtoB", api_name="/compare")


def test_stopping_the_app_with_sigterm_removes_its_panel_files(tmp_path):
    # A Space restart or `docker stop` sends SIGTERM; the app's panel folder must not outlive the process.
    from gradio_client import Client
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc, url = start_app(tiny_model(tmp_path / "model"), tmp_path / "app.log", TMPDIR=tmpdir)
    try:
        explain(Client(url, verbose=False), write(tmp_path / "x.png", rand_image(40, 30)))
        panels = list(tmpdir.glob("cyclegan-panels-*/*/*.png"))
        assert panels, sorted(p.name for p in tmpdir.iterdir())
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, (tmp_path / "app.log").read_text()[-2000:]
    assert not list(tmpdir.glob("cyclegan-panels-*")), "the panel folder outlived the app"
