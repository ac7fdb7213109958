"""A screenshot of the app explaining one photo, as a visitor's browser shows it (for before/after comparisons).

    python scripts/app_screenshot.py examples/photo/grace_hopper.png --out shots/grace_hopper.jpg
    python scripts/app_screenshot.py examples/photo/china.png --model runs/new/model --out shots/china_new.jpg

Serves app.py in this process on a free 127.0.0.1 port with the given model folder (default: the embedded
default model) and opens it in Debian's chromium through Playwright at 1280x720 (a projector), uploads the
photo, waits for G(x), F(G(x)), F(x) and the heat maps, and saves the visible page, or with --full-page all of
it. Needs the app and dev extras (gradio, playwright) and /usr/bin/chromium (tests/setup.sh installs both).
Writes nothing but --out, and refuses to replace an existing file.
"""
from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
PANELS = ["fake", "rec", "idt", "cycle-heat"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", help="the photo to upload")
    ap.add_argument("--out", required=True, help="screenshot file (.png or .jpg); never replaced")
    ap.add_argument("--model", default="", help="a model folder (default: the app's embedded default model)")
    ap.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    ap.add_argument("--full-page", action="store_true", help="the whole page, not just the 1280x720 window")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        sys.exit(f"error: {out} exists; choose another --out (nothing was written)")
    if not Path(args.image).is_file():
        sys.exit(f"error: {args.image}: no such file")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit('error: needs Playwright: pip install -e ".[dev]" (and chromium: bash tests/setup.sh)')
    import app

    settings = app.Settings.from_env(model=args.model, max_side=256, threads=2)
    demo = app.build_demo(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.serve(demo, settings, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(f"http://127.0.0.1:{port}/", wait_until="load", timeout=90_000)
                if args.direction == "BtoA":
                    page.locator("#direction label").nth(1).click()
                upload = page.locator("#input-image input[type=file]")
                upload.wait_for(state="attached", timeout=90_000)
                upload.set_input_files(str(Path(args.image).resolve()))
                for panel in PANELS:
                    img = page.locator(f"#{panel} img").first
                    img.wait_for(state="visible", timeout=120_000)
                    page.wait_for_function("(el) => el.complete && el.naturalWidth > 0",
                                           arg=img.element_handle(), timeout=60_000)
                page.wait_for_timeout(500)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=args.full_page,
                                **({"quality": 85, "type": "jpeg"} if out.suffix.lower() in (".jpg", ".jpeg")
                                   else {}))
            finally:
                browser.close()
    finally:
        demo.close()
        demo.cyclegan_app.panels.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
