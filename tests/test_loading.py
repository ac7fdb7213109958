"""cyclegan.loading.load_model: local paths never go to the Hub; Hub repos are checked from their metadata
before anything is downloaded; Hub failures are one readable line; one download per model at a time.

huggingface_hub reads HF_ENDPOINT at import, so the Hub cases run in a client subprocess pointed at
tests/hub_server.py (127.0.0.1).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cyclegan import CycleGAN
from cyclegan.loading import MissingModelPath, ModelRefused, load_model, parse_spec
from hub_server import Announced, start_hub_server

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("tiny") / "model"
    torch.manual_seed(0)
    CycleGAN(name_A="horse", name_B="zebra", ngf=4, n_blocks=1).save_pretrained(folder)
    return {n: (folder / n).read_bytes() for n in ("config.json", "model.safetensors")}


@pytest.fixture(scope="module")
def hub(tiny_files):
    server = start_hub_server()
    server.put("test-user/tiny", tiny_files)
    server.put("test-user/tiny", {"README.md": b"second commit\n"}, message="v1 of the card")
    server.put("test-user/huge", {"config.json": tiny_files["config.json"],
                                  "model.safetensors": Announced(50 * 10**9)})
    server.put("test-user/pickled", {"config.json": tiny_files["config.json"], "pytorch_model.bin": b"\x80\x04K."})
    server.put("test-user/gated", tiny_files, gated=True)
    yield server
    server.stop()


def run_client(hub, tmp_path, code: str, env: dict | None = None, cwd: Path = ROOT) -> dict:
    """Runs `code` in a subprocess against the server; it prints one JSON object on its last line."""
    full_env = {**os.environ, **hub.client_env(tmp_path), "PYTHONPATH": str(ROOT), **(env or {})}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env,
                       cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


TRY = """
    import json, sys, time
    from cyclegan.loading import load_model
    out = {}
    for spec in SPECS:
        t = time.monotonic()
        try:
            m = load_model(spec)
            out[spec] = {"ok": True, "names": [m.name_A, m.name_B], "source": m.source}
        except ValueError as e:
            out[spec] = {"ok": False, "kind": getattr(e, "kind", None), "msg": str(e), "type": type(e).__name__}
        out[spec]["s"] = time.monotonic() - t
    print(json.dumps(out))
"""


def try_specs(hub, tmp_path, specs, env=None, cwd=ROOT) -> dict:
    return run_client(hub, tmp_path, f"SPECS = {specs!r}\n" + textwrap.dedent(TRY), env=env, cwd=cwd)


def test_missing_local_paths_are_reported_at_once_without_a_hub_request(hub, tmp_path):
    """The old loader sent these to the Hub and reported a connection problem after ~25 s of retries."""
    before = len(hub.state.log)
    specs = ["models/no-such-model", "./nosuch", "runs/x/model", str(tmp_path / "gone"), "nosuch", "~/nosuch-model",
             "a/b/c"]
    res = try_specs(hub, tmp_path, specs)
    for spec in specs:
        r = res[spec]
        assert not r["ok"] and r["kind"] == "missing-path", (spec, r)
        assert "does not exist" in r["msg"] and "\n" not in r["msg"], r
        assert r["s"] < 5, r
    assert "models has no 'no-such-model'" in res["models/no-such-model"]["msg"]
    typo = try_specs(hub, tmp_path, ["models/photo2sketh"])["models/photo2sketh"]
    assert "the closest name there is 'models/photo2sketch'" in typo["msg"] and "?" not in typo["msg"], typo
    assert hub.state.log[before:] == [], "a local path was sent to the Hub"


def test_spec_parsing():
    assert parse_spec("test-user/tiny") == ("hub", "test-user/tiny", None)
    assert parse_spec("test-user/tiny@v9") == ("hub", "test-user/tiny", "v9")
    assert parse_spec(str(ROOT / "models"))[0] == "local"
    for bad in ["", "  ", "user/na me", "user/", "/user/name", "user//name", "user/name@", "us..er/name"]:
        with pytest.raises(MissingModelPath):
            parse_spec(bad)


def test_hub_errors_are_one_line_naming_the_case(hub, tmp_path):
    res = try_specs(hub, tmp_path, ["test-user/nosuchrepo", "test-user/tiny@v9", "test-user/gated",
                                    "test-user/tiny", "test-user/tiny@main"])
    nf = res["test-user/nosuchrepo"]
    assert nf["kind"] == "repo-not-found" and "'test-user/nosuchrepo' not found" in nf["msg"], nf
    assert "hf auth login" in nf["msg"] and "404 Client Error" not in nf["msg"]
    rev = res["test-user/tiny@v9"]
    assert rev["kind"] == "revision-not-found" and "no revision 'v9'" in rev["msg"] and "drop '@v9'" in rev["msg"], rev
    gated = res["test-user/gated"]
    assert gated["kind"] == "gated" and "accept its conditions" in gated["msg"], gated
    for r in res.values():
        assert "\n" not in r.get("msg", "")
    ok = res["test-user/tiny"]
    assert ok["ok"] and ok["names"] == ["horse", "zebra"], ok
    assert "Hub repo test-user/tiny (revision main, commit" in ok["source"]


def test_wrong_token_is_not_authorised(tiny_files, tmp_path):
    server = start_hub_server(token="the-right-token")
    try:
        server.put("test-user/tiny", tiny_files)
        res = try_specs(server, tmp_path, ["test-user/tiny"])
    finally:
        server.stop()
    r = res["test-user/tiny"]
    assert r["kind"] == "not-authorised" and "HTTP 401" in r["msg"] and "HF_TOKEN" in r["msg"], r


def test_offline_and_unreachable_hub_say_so(hub, tmp_path):
    res = try_specs(hub, tmp_path, ["test-user/tiny"], env={"HF_HUB_OFFLINE": "1"})
    r = res["test-user/tiny"]
    assert r["kind"] == "offline" and "HF_HUB_OFFLINE" in r["msg"] and "not in the local Hub cache" in r["msg"], r
    # Nothing listens on port 9 of the loopback: connection refused.
    res = try_specs(hub, tmp_path, ["test-user/tiny"], env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    r = res["test-user/tiny"]
    assert r["kind"] == "offline" and "cannot reach the Hub at http://127.0.0.1:9" in r["msg"], r
    assert r["s"] < 20, r


def test_a_50_gb_weights_file_is_refused_from_metadata_without_downloading(hub, tmp_path):
    before = len(hub.state.log)
    res = run_client(hub, tmp_path, """
        import json, resource, time
        from cyclegan.loading import load_model
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.monotonic()
        try:
            load_model("test-user/huge"); out = {"ok": True}
        except ValueError as e:
            out = {"ok": False, "kind": e.kind, "msg": str(e)}
        out["s"] = time.monotonic() - t
        out["grew_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
        print(json.dumps(out))
    """)
    assert not res["ok"] and res["kind"] == "refused", res
    assert "model.safetensors is 50.0 GB, over the 1.1 GB limit" in res["msg"] and "nothing was downloaded" in res["msg"]
    assert res["s"] < 1 and res["grew_kb"] < 100_000, res
    fetched = [r for r in hub.state.log[before:] if "/resolve/" in r[1]]
    assert fetched == [], fetched
    assert any("/api/models/test-user/huge" in r[1] for r in hub.state.log[before:])


def test_a_pickle_only_repo_is_refused_without_downloading(hub, tmp_path):
    before = len(hub.state.log)
    r = try_specs(hub, tmp_path, ["test-user/pickled"])["test-user/pickled"]
    assert r["kind"] == "refused" and "no model.safetensors" in r["msg"] and "pytorch_model.bin" in r["msg"], r
    assert [x for x in hub.state.log[before:] if "/resolve/" in x[1]] == []


def test_concurrent_callers_share_one_download_and_the_next_load_uses_the_cache(hub, tmp_path):
    before = len(hub.state.log)
    res = run_client(hub, tmp_path, """
        import json, threading
        from cyclegan.loading import load_model
        seen, errors, progress = [], [], []
        def go():
            try:
                seen.append(load_model("test-user/tiny", progress=lambda d, t: progress.append((d, t))).source)
            except Exception as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=go) for _ in range(4)]
        [t.start() for t in threads]; [t.join() for t in threads]
        again = load_model("test-user/tiny").source
        print(json.dumps({"seen": seen, "errors": errors, "again": again, "progress": progress[-1:]}))
    """)
    assert res["errors"] == [] and len(res["seen"]) == 4, res
    weights_gets = [r for r in hub.state.log[before:] if r[0] == "GET" and r[1].endswith("/model.safetensors")]
    assert len(weights_gets) == 1, weights_gets
    done, total = res["progress"][0]
    assert done == total and total > 1000


def test_hostile_config_on_the_hub_is_refused_before_the_weights_download(hub, tiny_files, tmp_path):
    cfg = dict(json.loads(tiny_files["config.json"]), ngf=1024)
    hub.put("test-user/hostile", {"config.json": json.dumps(cfg).encode(), "model.safetensors": b"0" * 1000})
    before = len(hub.state.log)
    r = try_specs(hub, tmp_path, ["test-user/hostile"])["test-user/hostile"]
    assert r["kind"] == "refused" and "ngf" in r["msg"], r
    assert not [x for x in hub.state.log[before:] if x[0] == "GET" and x[1].endswith("model.safetensors")]


# -- local folders (no Hub involved) -----------------------------------------------------------------------
def test_local_folder_checks(tiny_files, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    for n, data in tiny_files.items():
        (good / n).write_bytes(data)
    m = load_model(str(good))
    assert (m.name_A, m.name_B) == ("horse", "zebra") and not m.training
    with pytest.raises(ModelRefused, match=r"model.safetensors is .* over the 1000 bytes limit"):
        load_model(str(good), max_weight_bytes=1000)

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_bytes(tiny_files["config.json"])
    (pickled / "latest_net_G.pth").write_bytes(b"\x80\x04K.")
    with pytest.raises(ModelRefused, match="no model.safetensors .*latest_net_G.pth: pickle files are never loaded"):
        load_model(str(pickled))
    with pytest.raises(ModelRefused, match="holds no config.json"):
        load_model(str(tmp_path))
    with pytest.raises(ModelRefused, match="is a file"):
        load_model(str(good / "config.json"))
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "config.json").write_text(json.dumps(dict(json.loads(tiny_files["config.json"]), ngf=1024)))
    (hostile / "model.safetensors").write_bytes(tiny_files["model.safetensors"])
    with pytest.raises(ModelRefused, match="ngf"):
        load_model(str(hostile))
    (pickled / "config.json").write_text("{not json")
    (pickled / "model.safetensors").write_bytes(tiny_files["model.safetensors"])
    with pytest.raises(ModelRefused, match="config.json is not valid JSON"):
        load_model(str(pickled))


def test_allow_list(tiny_files, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    for n, data in tiny_files.items():
        (good / n).write_bytes(data)
    assert load_model(str(good), allow=[str(good)]).name_A == "horse"
    assert load_model(str(good) + "/", allow=[str(good)]).name_A == "horse"
    with pytest.raises(ModelRefused, match="not one of the models this deployment offers") as e:
        load_model(str(good), allow=["test-user/tiny"])
    assert e.value.kind == "not-allowed"
    with pytest.raises(ModelRefused):  # refused before any request: no server is running here
        load_model("test-user/other", allow=["test-user/tiny"])


def test_translate_names_the_missing_revision(hub, tmp_path):
    """Issue 15 item 6: `translate --model test-user/tiny@v9` used to say only "404 Client Error."."""
    env = {**os.environ, **hub.client_env(tmp_path), "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "cyclegan.translate", "--model", "test-user/tiny@v9", "--out",
                        str(tmp_path / "out"), str(ROOT / "examples" / "photo" / "chelsea.png")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode != 0
    assert "test-user/tiny has no revision 'v9'" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_download_over_its_time_limit_is_stopped(hub, tiny_files, tmp_path):
    hub.put("test-user/slow", tiny_files)
    hub.fail("GET", r"^/test-user/slow/resolve/[0-9a-f]+/model.safetensors$", times=10, mode="slow", delay=3)
    r = run_client(hub, tmp_path, """
        import json
        from cyclegan.loading import load_model
        try:
            load_model("test-user/slow", timeout_s=1); out = {"ok": True}
        except ValueError as e:
            out = {"ok": False, "kind": e.kind, "msg": str(e)}
        print(json.dumps(out))
    """)
    assert not r["ok"] and r["kind"] == "timeout" and "longer than its time limit (1 s)" in r["msg"], r


def test_a_dedicated_cache_is_bounded_least_recently_used_first(hub, tiny_files, tmp_path):
    hub.put("test-user/first", tiny_files)
    hub.put("test-user/second", tiny_files)
    hub.put("test-user/third", tiny_files)
    before = len(hub.state.log)
    res = run_client(hub, tmp_path, """
        import json, os, sys
        from huggingface_hub import scan_cache_dir
        from cyclegan.loading import load_model
        cache = os.environ["CACHE"]
        kept = []
        limit = int(2.5 * int(os.environ["WEIGHTS_BYTES"]))  # room for two tiny models, not three
        for spec in ["test-user/first", "test-user/second", "test-user/first", "test-user/third"]:
            load_model(spec, cache_dir=cache, max_cache_bytes=limit)
            kept.append(sorted(r.repo_id for r in scan_cache_dir(cache).repos))
        print(json.dumps({"kept": kept, "size": scan_cache_dir(cache).size_on_disk}))
    """, env={"CACHE": str(tmp_path / "models-cache"), "WEIGHTS_BYTES": str(len(tiny_files["model.safetensors"]))})
    # first, second; first used again; third comes in and the least recently used (second) goes
    assert res["kept"][-1] == ["test-user/first", "test-user/third"], res
    gets = [p for m, p, _ in hub.state.log[before:] if m == "GET" and p.endswith("model.safetensors")]
    assert len(gets) == 3, gets  # first was loaded again from the cache
