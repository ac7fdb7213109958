"""A real browser (Debian's chromium driven by Playwright) uploads an image to app.py and waits for every panel.

Saves test-artifacts/app.png and the README's screenshot docs/screenshot.png. The app runs the embedded
default model when there is one under models/ (so the screenshot shows it), else a tiny random model.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_app import start_app, stop_app, tiny_model

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PANELS = ["real", "fake", "rec", "idt", "cycle-heat", "identity-heat", "error-bar"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")


def photo(path: Path) -> Path:
    """A photo to drop: scikit-image's (public domain) cat, else a generated scene."""
    try:
        from skimage import data
        Image.fromarray(data.chelsea()).save(path)
    except Exception:
        from synthetic import scene
        scene(np.random.default_rng(0), 256, "A").save(path)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    env = dict(os.environ)
    os.environ.pop("CYCLEGAN_MODEL", None)
    try:
        shipped = ROOT / "models" / "default"
        model = str(shipped) if (shipped / "config.json").is_file() else tiny_model(tmp / "model")
    finally:
        os.environ.clear()
        os.environ.update(env)
    # The app's own upload limits (20 MB, 50 megapixels), not test_app's small ones: a webcam frame is megapixels.
    proc, url = start_app(Path(model), tmp / "app.log", CYCLEGAN_MAX_SIDE=256, CYCLEGAN_THREADS=2,
                          CYCLEGAN_MAX_FILE_SIZE="20mb", CYCLEGAN_MAX_PIXELS=50_000_000)
    yield url, tmp
    stop_app(proc)


def launch(p, *extra):
    return p.chromium.launch(executable_path=CHROMIUM,
                             args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", *extra])


def test_upload_shows_every_panel(app):
    from playwright.sync_api import sync_playwright
    url, tmp = app
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(url, wait_until="load", timeout=90_000)
            upload = page.locator("#input-image input[type=file]")
            upload.wait_for(state="attached", timeout=90_000)
            upload.set_input_files(str(photo(tmp / "photo.png")))
            has_realness = page.locator("#realness").is_visible()
            wanted = PANELS + (["realness", "realness-bar"] if has_realness else [])
            for panel in wanted:
                img = page.locator(f"#{panel} img").first
                img.wait_for(state="visible", timeout=120_000)
                page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle(),
                                       timeout=60_000)
                box = img.bounding_box()
                assert box and box["width"] > 10 and box["height"] > 0, panel
            page.locator("#numbers table").wait_for(state="visible", timeout=60_000)
            assert "PSNR" in page.locator("#numbers").inner_text()
            page.locator("#slider img").first.wait_for(state="visible", timeout=60_000)
            page.wait_for_timeout(500)                       # let the last images paint
            shot = artifacts / "app.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    img = Image.open(shot)
    assert img.size[0] >= 1000 and np.asarray(img).std() > 10
    (ROOT / "docs").mkdir(exist_ok=True)
    shutil.copyfile(shot, ROOT / "docs" / "screenshot.png")


def test_webcam_capture_is_explained(app):
    # Chromium's fake camera (a moving test pattern) stands in for a webcam; capturing a frame runs the app.
    from playwright.sync_api import sync_playwright
    url, _ = app
    with sync_playwright() as p:
        browser = launch(p, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
        try:
            page = browser.new_context(permissions=["camera"], viewport={"width": 1500, "height": 1000}).new_page()
            page.goto(url, wait_until="load", timeout=90_000)
            page.get_by_label("Capture from camera").click()
            page.get_by_text("Click to Access Webcam").click()
            page.wait_for_function("() => { const v = document.querySelector('#input-image video');"
                                   " return v && v.readyState >= 2 && v.videoWidth > 0; }", timeout=60_000)
            video_w, video_h = page.evaluate("() => { const v = document.querySelector('#input-image video');"
                                             " return [v.videoWidth, v.videoHeight]; }")
            page.get_by_label("capture photo").click()
            for panel in ("real", "fake", "rec", "cycle-heat"):
                img = page.locator(f"#{panel} img").first
                img.wait_for(state="visible", timeout=120_000)
                page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle(),
                                       timeout=60_000)
            w, h = page.evaluate("() => { const i = document.querySelector('#real img');"
                                 " return [i.naturalWidth, i.naturalHeight]; }")
            assert max(w, h) <= 256 and abs(w / h - video_w / video_h) < 0.02, (w, h, video_w, video_h)
            page.locator("#numbers table").wait_for(state="visible", timeout=60_000)
            assert f"resized from {video_w}×{video_h}" in page.locator("#numbers").inner_text()
            # The gallery is named after its folders (whatever the model's domains are called).
            assert page.get_by_text("Examples (photo and sketch;").count() == 1
        finally:
            browser.close()
