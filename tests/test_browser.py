"""A real browser (Debian's chromium driven by Playwright) at a projector's 1280x720 uses the app: uploads a photo,
switches the direction, compares the ablations, downloads the full-resolution result, picks a released pair from a
mirror on 127.0.0.1 and captures a webcam frame.

The app is built in this process on the embedded default model (models/) when there is one, else a tiny random
model. Screenshots go to test-artifacts/ (ignored by git); the README's docs/screenshot.png is refreshed only on
request: python -m pytest tests/test_browser.py -k projector --update-screenshot
"""
from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_app import downloads, mirror_of_horse2zebra, served, tiny_model

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 720}
PANELS = ["real", "fake", "rec", "idt"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)")


def photo(path: Path, size=(451, 300)) -> Path:
    """A photo to drop: scikit-image's (public domain) cat, else a generated scene; not a square."""
    try:
        from skimage import data
        img = Image.fromarray(data.chelsea())
    except Exception:
        from synthetic import scene
        img = scene(np.random.default_rng(0), 512, "A")
    img.resize(size).save(path)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    has_default = any((ROOT / "models").glob("*/config.json"))
    mirror = mirror_of_horse2zebra(tmp)
    mp = pytest.MonkeyPatch()
    mp.setenv("CYCLEGAN_PRETRAINED_URL", mirror.url)
    try:
        # The app's own upload limits (20 MB, 50 megapixels): a webcam frame is megapixels.
        with served(None if has_default else tiny_model(tmp / "model"), tmp, models_dir=ROOT / "models",
                    examples=ROOT / "examples", max_side=256, threads=2, max_file_size="20mb",
                    max_pixels=50_000_000) as (url, _):
            yield url, tmp, mirror
    finally:
        mp.undo()
        mirror.stop()


def launch(p, *extra):
    return p.chromium.launch(executable_path=CHROMIUM,
                             args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", *extra])


def wait_image(page, selector: str, timeout=120_000):
    img = page.locator(f"{selector} img").first
    img.wait_for(state="visible", timeout=timeout)
    page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=60_000)
    return img


def in_viewport(box) -> bool:
    return (box is not None and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"] + 1
            and box["y"] + box["height"] <= VIEWPORT["height"] + 1)


def label_of(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} [data-testid='block-label']").first.inner_text()


def open_page(browser, url):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(url, wait_until="load", timeout=90_000)
    upload = page.locator("#input-image input[type=file]")
    upload.wait_for(state="attached", timeout=90_000)
    return page, upload


def test_projector_layout_labels_in_both_directions_and_training_strip(app, request):
    from playwright.sync_api import sync_playwright
    url, tmp, _ = app
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page, upload = open_page(browser, url)
            upload.set_input_files(str(photo(tmp / "photo.png")))
            for panel in PANELS + ["cycle-heat", "error-bar"]:
                wait_image(page, f"#{panel}")
            page.locator("#numbers table").wait_for(state="visible", timeout=60_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "app-1280x720.png"))
            page.screenshot(path=str(ARTIFACTS / "app-full-page.png"), full_page=True)
            if request.config.getoption("--update-screenshot"):  # the README's picture, on request only
                shutil.copyfile(ARTIFACTS / "app-full-page.png", ROOT / "docs" / "screenshot.png")
            # At 1280x720, without scrolling: the input and the four image panels
            assert page.evaluate("() => window.scrollY") == 0
            for elem in ["input-image"] + PANELS:
                box = page.locator(f"#{elem}").bounding_box()
                assert in_viewport(box), (elem, box)
            # Colour-bar text readable: the bar is drawn at no less than its own pixel size
            bar = page.locator("#error-bar img").first
            natural, shown = bar.evaluate("(el) => [el.naturalWidth, el.getBoundingClientRect().width]")
            assert shown >= 0.95 * natural, (natural, shown)
            forward = {k: label_of(page, k) for k in ("fake", "rec", "idt")}
            assert forward["fake"].startswith("G_AB(x)") and forward["rec"].startswith("G_BA(G_AB(x))"), forward
            assert "G_AB translates and G_BA maps back" in page.locator("#sidebar").inner_text()
            # B -> A: the panels and the sidebar name that direction's generators
            page.locator("#direction label").nth(1).click()
            page.wait_for_function("() => document.querySelector('#sidebar').innerText.includes('G_BA translates')",
                                   timeout=60_000)
            page.locator("#numbers table").wait_for(state="visible", timeout=60_000)
            page.wait_for_function("() => document.querySelector('#numbers').innerText.includes('G_AB(G_BA(x))')",
                                   timeout=120_000)
            backward = {k: label_of(page, k) for k in ("fake", "rec", "idt", "cycle-heat", "identity-heat")}
            assert backward["fake"].startswith("G_BA(x)") and backward["rec"].startswith("G_AB(G_BA(x))"), backward
            assert backward["idt"].startswith("G_AB(x)") and "G_AB(G_BA(x))" in backward["cycle-heat"], backward
            assert "G_BA translates and G_AB maps back" in page.locator("#sidebar").inner_text()
            page.screenshot(path=str(ARTIFACTS / "app-1280x720-BtoA.png"))
            # what the model was trained on: a strip of its training images per domain
            strip = page.locator("#training-strip")
            strip.scroll_into_view_if_needed()
            if any((ROOT / "models").glob("*/training_examples")):
                strip.locator("img").first.wait_for(state="visible", timeout=30_000)
                assert strip.locator("img").count() >= 2
                assert "What the model was trained on" in strip.inner_text()
        finally:
            browser.close()


def test_every_ablation_row_is_visible_by_scrolling_the_page_only(app):
    from playwright.sync_api import sync_playwright
    url, tmp, _ = app
    if not (ROOT / "models" / "ablation").is_dir():
        pytest.skip("no ablation models shipped")
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page, upload = open_page(browser, url)
            upload.set_input_files(str(photo(tmp / "photo.png")))
            wait_image(page, "#fake")
            page.locator("#why-both").get_by_text("Why both losses?").click()
            page.locator("#compare").click()
            names = sorted(p.parent.name for p in (ROOT / "models" / "ablation").glob("*/config.json"))
            assert page.locator(".ablation").count() == len(names)
            for i, name in enumerate(names):
                block = page.locator(f"#ablation-{name}")
                for img_id in ("fake", "rec"):
                    wait_image(page, f"#abl-{name}-{img_id}")
                block.scroll_into_view_if_needed()
                box = block.bounding_box()
                assert in_viewport(box), (i, box)
                caption = block.locator(".ablation-caption").first.inner_text()
                assert ":" in caption and caption.endswith("."), caption
                # nothing scrolls inside a box: every ancestor shows all of its content
                hidden = block.evaluate("""(el) => { const out = []; for (let e = el; e; e = e.parentElement) {
                    const s = getComputedStyle(e); if (/(auto|scroll)/.test(s.overflowY) && e.scrollHeight >
                    e.clientHeight + 2 && e !== document.scrollingElement && e !== document.body) out.push(e.id ||
                    e.className); } return out; }""")
                assert not hidden, hidden
                # the aspect ratio is kept: the thumbnail is the photo's shape, not a square
                w, h = block.locator("img").first.evaluate("(el) => [el.naturalWidth, el.naturalHeight]")
                assert abs(w / h - 451 / 300) < 0.02, (w, h)
            page.screenshot(path=str(ARTIFACTS / "app-ablations.png"))
        finally:
            browser.close()


def test_full_resolution_download_and_released_pair_from_the_mirror(app):
    from playwright.sync_api import sync_playwright
    url, tmp, mirror = app
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page, upload = open_page(browser, url)
            upload.set_input_files(str(photo(tmp / "big.png", (900, 600))))
            wait_image(page, "#fake")
            page.locator("#full-resolution").click()
            link = page.locator("#full-files a").first
            link.wait_for(state="attached", timeout=120_000)
            assert "900×600" in page.locator("#full-status").inner_text()
            href = link.get_attribute("href")
            data = urllib.request.urlopen(href if href.startswith("http") else url.rstrip("/") + href).read()
            path = tmp / "download.png"
            path.write_bytes(data)
            assert Image.open(path).size == (900, 600)
            w = page.locator("#fake img").first.evaluate("(el) => el.naturalWidth")
            assert w == 256                                            # the panels stay at display size

            # the released pair horse <-> zebra, from the mirror on 127.0.0.1
            page.locator("#model-picker input").click()
            page.get_by_role("option", name="released: horse <-> zebra").click()
            page.wait_for_function("() => document.querySelector('#model-status').innerText.startsWith('Loaded')",
                                   timeout=120_000)
            assert downloads(mirror) == {"/horse2zebra.pth": 1, "/zebra2horse.pth": 1}, mirror.requests
            assert "horse → zebra" in page.locator("#direction").inner_text()
            assert page.locator("#examples img").count() == 0                    # no examples suit this pair
            assert "No example images for horse ↔ zebra" in page.locator("#examples").inner_text()
            upload.set_input_files(str(photo(tmp / "horse.png")))
            for panel in PANELS + ["cycle-heat", "identity-heat"]:
                wait_image(page, f"#{panel}")
            assert label_of(page, "fake").startswith("G_AB(x) · zebra") and label_of(page, "real") == "x · horse"
            assert "G_AB (horse → zebra)" in page.locator("#sidebar").inner_text()
            page.screenshot(path=str(ARTIFACTS / "app-released-pair.png"))
        finally:
            browser.close()


def test_webcam_capture_is_explained(app):
    # Chromium's fake camera (a moving test pattern) stands in for a webcam; capturing a frame runs the app.
    from playwright.sync_api import sync_playwright
    url, _, _ = app
    with sync_playwright() as p:
        browser = launch(p, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
        try:
            page = browser.new_context(permissions=["camera"], viewport=VIEWPORT).new_page()
            page.goto(url, wait_until="load", timeout=90_000)
            page.get_by_label("Capture from camera").click()
            page.get_by_text("Click to Access Webcam").click()
            page.wait_for_function("() => { const v = document.querySelector('#input-image video');"
                                   " return v && v.readyState >= 2 && v.videoWidth > 0; }", timeout=60_000)
            video_w, video_h = page.evaluate("() => { const v = document.querySelector('#input-image video');"
                                             " return [v.videoWidth, v.videoHeight]; }")
            page.get_by_label("capture photo").click()
            for panel in ("real", "fake", "rec", "cycle-heat"):
                wait_image(page, f"#{panel}")
            w, h = page.evaluate("() => { const i = document.querySelector('#real img');"
                                 " return [i.naturalWidth, i.naturalHeight]; }")
            assert max(w, h) <= 256 and abs(w / h - video_w / video_h) < 0.02, (w, h, video_w, video_h)
            page.locator("#numbers table").wait_for(state="visible", timeout=60_000)
            assert f"resized from {video_w}×{video_h}" in page.locator("#numbers").inner_text()
        finally:
            browser.close()
