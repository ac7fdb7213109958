"""cyclegan.released: released reference pairs fetched from a local mirror (stand-in .pth files in the released
layout, tests/released_mirror.py), converted once, cached, shared between concurrent callers, bounded."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cyclegan import convert, released
from cyclegan.released import ReleasedModelError
from released_mirror import Mirror, make_reference_state_dict, write_standins


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mirror")
    names = [n for p in released.PAIRS for n in p.files if not n.startswith(("cityscapes", "facades"))]
    write_standins(folder, names, ngf=4, n_blocks=2)
    server = Mirror(folder).start()
    yield server, folder
    server.stop()


@pytest.fixture()
def env(mirror, monkeypatch, tmp_path):
    server, _ = mirror
    monkeypatch.setenv("CYCLEGAN_PRETRAINED_URL", server.url)
    monkeypatch.setenv("CYCLEGAN_RELEASED_CACHE", str(tmp_path / "cache"))
    return server, tmp_path / "cache"


def fetched(server, name: str) -> int:
    return sum(1 for m, p, status in server.requests if m == "GET" and p == f"/{name}.pth" and status == 200)


def test_the_pairs_for_the_picker():
    assert [p.title for p in released.PAIRS] == [
        "horse <-> zebra", "apple <-> orange", "summer <-> winter (Yosemite)", "Monet <-> photo",
        "satellite <-> map", "Cityscapes photo <-> labels", "facades photo <-> labels"]
    for p in released.PAIRS:
        assert p.a2b in convert.RELEASED and p.b2a in convert.RELEASED
        assert released.pair(p.title) is p and released.pair(p.key) is p and released.pair(p.b2a) is p
    monet = released.pair("Monet <-> photo")
    assert (monet.a2b, monet.b2a) == ("monet2photo", "style_monet")
    assert monet.direction_label("AtoB") == "Monet -> photo" and monet.direction_label("BtoA") == "photo -> Monet"
    assert ("horse2zebra", "horse <-> zebra") in released.pairs() and len(released.pairs()) == 7
    with pytest.raises(ReleasedModelError, match="not a released pair; choose one of: horse2zebra"):
        released.pair("cat2dog")


def test_first_choice_downloads_and_converts_the_next_is_instant(env, mirror):
    server, cache = env
    steps = []
    folder = released.get("horse <-> zebra", progress=lambda f, m: steps.append((f, m)))
    assert folder == cache / "horse2zebra"
    assert {"config.json", "model.safetensors", "conversion.json", "README.md"} <= {p.name for p in folder.iterdir()}
    assert not list(cache.glob(".partial-*")) and not list(folder.glob("*.pth"))
    assert fetched(server, "horse2zebra") == 1 and fetched(server, "zebra2horse") == 1
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and steps[-1][1] == "horse <-> zebra: ready"
    size = (mirror[1] / "zebra2horse.pth").stat().st_size
    assert any(f"downloading zebra2horse.pth ({size} bytes of {size} bytes)" in m for _, m in steps), steps

    # The weights are the mirror's files, normalised (2018 running statistics dropped).
    sd = load_file(str(folder / "model.safetensors"))
    src = torch.load(mirror[1] / "horse2zebra.pth", weights_only=True)
    assert torch.equal(sd["G_AB.model.1.weight"], src["model.1.weight"])
    model = released.load("horse2zebra")
    assert model.direction_label("AtoB") == "horse -> zebra" and "horse2zebra.pth + zebra2horse.pth" in model.source

    before = len(server.requests)
    assert released.get("horse2zebra") == folder and released.cached("horse2zebra") == folder
    assert server.requests[before:] == [], "a cached pair was downloaded again"


def test_concurrent_callers_download_once(env):
    server, cache = env
    results, errors = [], []

    def go():
        try:
            results.append(released.load("apple2orange").name_A)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=go) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == [] and results == ["apple"] * 4
    assert fetched(server, "apple2orange") == 1 and fetched(server, "orange2apple") == 1


def test_the_cache_keeps_the_most_recently_used(env):
    server, cache = env
    for name in ("horse2zebra", "apple2orange"):
        released.get(name, max_cached=2)
    released.get("horse2zebra", max_cached=2)          # used again: apple2orange is now the oldest
    released.get("monet2photo", max_cached=2)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == ["horse2zebra", "monet2photo"]
    assert released.cached("apple2orange") is None


def test_offline_is_one_line_and_leaves_the_cache_as_it_was(env, monkeypatch):
    _, cache = env
    monkeypatch.setenv("CYCLEGAN_PRETRAINED_URL", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ReleasedModelError) as e:
        released.get("horse2zebra")
    msg = str(e.value)
    assert "cannot download http://127.0.0.1:9/horse2zebra.pth" in msg and "offline" in msg and "\n" not in msg
    assert "CYCLEGAN_PRETRAINED_URL" in msg
    assert [p.name for p in cache.iterdir()] == []


def test_missing_file_on_the_server(env):
    with pytest.raises(ReleasedModelError, match="cityscapes_photo2label.pth: HTTP 404"):
        released.get("cityscapes")
    assert released.cached("cityscapes") is None


def test_a_file_over_the_size_limit_is_refused_before_reading(env):
    server, cache = env
    with pytest.raises(ReleasedModelError, match="announces .* over the 1000 bytes limit .*refused without downloading"):
        released.get("sat2map", max_file_bytes=1000)
    assert released.cached("sat2map") is None and not list(cache.glob(".partial-*"))


def test_a_file_that_is_not_a_generator_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "bad-mirror"
    folder.mkdir()
    torch.save({"model.1.weight": torch.zeros(4, 1, 7, 7)}, folder / "horse2zebra.pth")
    torch.save(make_reference_state_dict(4, 2), folder / "zebra2horse.pth")
    server = Mirror(folder).start()
    try:
        monkeypatch.setenv("CYCLEGAN_PRETRAINED_URL", server.url)
        with pytest.raises(ReleasedModelError, match="not a released generator: .*model.1.weight"):
            released.get("horse2zebra", tmp_path / "cache")
    finally:
        server.stop()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_the_mirror_script_writes_standins(tmp_path):
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "tests" / "released_mirror.py"), "--write", str(tmp_path),
                        "--ngf", "4", "--n-blocks", "2", "horse2zebra", "zebra2horse"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    model, _ = convert.convert_pair(tmp_path / "horse2zebra.pth", tmp_path / "zebra2horse.pth", "horse", "zebra")
    assert (model.ngf, model.n_blocks) == (4, 2)
    r = subprocess.run([sys.executable, str(root / "tests" / "released_mirror.py"), "--write", str(tmp_path),
                        "cat2dog"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not released names: cat2dog" in r.stderr


class _Liar:
    """A server that announces 100,000 bytes, sends 1,000 and closes the connection."""

    def __init__(self):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"\0" * 1000)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_cut_connection_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    liar = _Liar()
    try:
        monkeypatch.setenv("CYCLEGAN_PRETRAINED_URL", liar.url)
        with pytest.raises(ReleasedModelError, match=r"horse2zebra.pth: the connection ended after 1000 of 100000 bytes; retry"):
            released.get("horse2zebra", tmp_path / "cache")
    finally:
        liar.stop()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []
