"""Publishing to and pulling from a Hub, offline: huggingface_hub's real client against tests/hub_server.py.

HF_ENDPOINT is read when huggingface_hub is imported, so everything that talks to the server runs in a
subprocess with the server's environment (endpoint, a test token, a private cache).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from cyclegan.card import card_metadata, model_card
from conftest import ROOT, run_train
from hub_server import hub_server, validate_card_metadata  # noqa: F401  (pytest fixture)
from synthetic import make_unpaired

ONE_EPOCH = ["--n-epochs", "1", "--n-epochs-decay", "0", "--name-A", "horse", "--name-B", "zebra"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return make_unpaired(tmp_path_factory.mktemp("hubdata"), n=4, size=64)


def client(hub, tmp_path, args: list[str], drop_env: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, **hub.client_env(tmp_path), "PYTHONPATH": str(ROOT)}
    for k in drop_env:
        env.pop(k, None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def script(hub, tmp_path, code: str, *argv: str) -> dict:
    """Runs `code` in a client subprocess; it prints one JSON object on its last line."""
    r = client(hub, tmp_path, ["-c", textwrap.dedent(code), *argv])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def published(hub_server, small_data, tmp_path_factory):  # noqa: F811
    """A tiny run trained for 2 epochs with --push-to-hub (every epoch, private repo)."""
    tmp = tmp_path_factory.mktemp("published")
    run = tmp / "run"
    r = run_train("--data", str(small_data), "--out", str(run), "--n-epochs", "2", "--n-epochs-decay", "0",
                  "--name-A", "horse", "--name-B", "zebra", "--push-to-hub", "test-user/tiny-h2z", "--hub-every", "1",
                  "--hub-private", env=hub_server.client_env(tmp))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return run, r, tmp


PULL_BACK = """
    import json, sys, torch
    from safetensors.torch import load_file
    from cyclegan import CycleGAN
    from cyclegan.hub import main as hub_main
    repo, local, first, out = sys.argv[1:5]
    m = CycleGAN.from_pretrained(repo)
    ref = load_file(local)
    sd = m.state_dict()
    same = sorted(sd) == sorted(ref) and all(torch.equal(sd[k], ref[k]) for k in ref)
    old = CycleGAN.from_pretrained(repo, revision=first).state_dict()
    differs = any(not torch.equal(old[k], sd[k]) for k in sd)
    rc = hub_main(["pull", repo, "--out", out])
    print(json.dumps({"same": same, "names": [m.name_A, m.name_B], "ngf": m.ngf, "source": m.source,
                      "old_differs": differs, "pull_rc": rc, "keys": sorted(sd)}))
"""


def test_train_push_pull_roundtrip(published, hub_server, tmp_path):  # noqa: F811
    run, result, _ = published
    assert "published to http://127.0.0.1" in result.stdout
    repo = hub_server.state.repos[("model", "test-user/tiny-h2z")]
    assert repo.private
    history = repo.history()  # newest first: epoch 2, epoch 1, the repo's initial commit
    assert len(history) == 3, [c.message for c in history]
    files = hub_server.files("test-user/tiny-h2z")
    assert {"config.json", "model.safetensors", "README.md", "samples.png", "losses.png", "run.json"} <= set(files)
    assert not any(f.endswith((".bin", ".pt", ".pth", ".ckpt")) for f in files)
    assert files["model.safetensors"] == (run / "model" / "model.safetensors").read_bytes()
    assert files["samples.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert hub_server.state.requests("POST", "/api/validate-yaml"), "the client validated the card's metadata"

    # The card: valid metadata, what it translates, command, data, weights, steps, losses, samples, usage, app.
    card = files["README.md"].decode()
    meta = card_metadata(card)
    assert meta["library_name"] == "cyclegan" and meta["pipeline_tag"] == "image-to-image"
    assert meta["license"] == "mit" and {"cyclegan", "image-to-image", "horse", "zebra"} <= set(meta["tags"])
    assert validate_card_metadata(card) == []
    assert ModelCard(card).data.pipeline_tag == "image-to-image"
    info = json.loads((run / "run.json").read_text())
    for expected in ["horse ↔ zebra", info["command"], str(info["args"]["data"]), "cycle A→B→A 10",
                     "identity 0.5", f"- steps: {info['step']}", "G_total", "![samples](samples.png)",
                     "from cyclegan import CycleGAN", 'CycleGAN.from_pretrained("test-user/tiny-h2z")',
                     "model.G_AB(horse)", "CYCLEGAN_MODEL=test-user/tiny-h2z python app.py", "No metrics were measured"]:
        assert expected in card, expected
    assert f"{info['final_losses']['G_total']:.4g}" in card

    # Pull it back with the real client: bit-identical weights, no discriminators, and `revision=` works.
    out = tmp_path / "pulled"
    got = script(hub_server, tmp_path, PULL_BACK, "test-user/tiny-h2z", str(run / "model" / "model.safetensors"),
                 history[1].sha, str(out))
    assert got["same"] and got["names"] == ["horse", "zebra"] and got["ngf"] == 8
    assert not any(k.startswith(("D_A.", "D_B.")) for k in got["keys"])
    assert "Hub repo test-user/tiny-h2z" in got["source"] and history[0].sha[:12] in got["source"]
    assert got["old_differs"], "revision=<epoch-1 commit> gave the final weights"
    assert got["pull_rc"] == 0
    assert (out / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert (out / "README.md").read_text() == card


def test_failed_push_leaves_the_run_intact_and_the_retry_succeeds(hub_server, small_data, tmp_path):  # noqa: F811
    repo_id = "test-user/flaky"
    run = tmp_path / "run"
    hub_server.fail("POST", r"/commit/", times=1)  # the repo gets created, then the commit breaks
    r = run_train("--data", str(small_data), "--out", str(run), *ONE_EPOCH, "--push-to-hub", repo_id,
                  env=hub_server.client_env(tmp_path))
    assert r.returncode == 4, r.stderr[-3000:]
    assert "500" in r.stderr and "Internal Error" in r.stderr, r.stderr[-2000:]
    assert f"Retry with `python -m cyclegan.hub push {run} {repo_id}`." in r.stderr
    assert "model.safetensors" not in hub_server.files(repo_id)
    for f in ["checkpoint.safetensors", "run.json", "losses.csv", "model/config.json", "model/model.safetensors"]:
        assert (run / f).is_file(), f
    assert list((run / "samples").glob("*.png"))
    weights = load_file(str(run / "model" / "model.safetensors"))
    before = digest(run)

    # The retry command, first cut off mid-request (connection dropped), then for real.
    hub_server.fail("POST", r"/commit/", times=1, mode="drop")
    r = client(hub_server, tmp_path, ["-m", "cyclegan.hub", "push", str(run), repo_id])
    assert r.returncode == 4 and "failed" in r.stderr and "Retry with" in r.stderr, r.stderr[-2000:]
    r = client(hub_server, tmp_path, ["-m", "cyclegan.hub", "push", str(run), repo_id])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"to {hub_server.url}/{repo_id}" in r.stdout
    assert digest(run) == before, "publishing changed the run"
    files = hub_server.files(repo_id)
    assert files["model.safetensors"] == (run / "model" / "model.safetensors").read_bytes()
    assert set(load_file(str(run / "model" / "model.safetensors"))) == set(weights)
    assert "python train/run.py" in files["README.md"].decode()


def test_push_without_a_token_says_how_to_log_in(published, hub_server, tmp_path):  # noqa: F811
    run = published[0]
    r = client(hub_server, tmp_path, ["-m", "cyclegan.hub", "push", str(run), "test-user/no-token"],
               drop_env=("HF_TOKEN",))
    assert r.returncode == 4
    assert "no Hugging Face token" in r.stderr and "HF_TOKEN" in r.stderr
    assert ("model", "test-user/no-token") not in hub_server.state.repos


REFUSALS = """
    import io, json, sys, torch
    from huggingface_hub import HfApi
    from safetensors.torch import save
    from cyclegan import CycleGAN
    from cyclegan.hub import main as hub_main
    api = HfApi()
    m = CycleGAN(ngf=4, n_blocks=1)
    cfg = json.dumps(m.config.to_dict()).encode()
    # A repo holding a pickle instead of safetensors.
    api.create_repo("test-user/pickled")
    buf = io.BytesIO(); torch.save(m.state_dict(), buf)
    api.upload_file(path_or_fileobj=buf.getvalue(), path_in_repo="pytorch_model.bin", repo_id="test-user/pickled")
    api.upload_file(path_or_fileobj=cfg, path_in_repo="config.json", repo_id="test-user/pickled")
    res = {}
    try:
        CycleGAN.from_pretrained("test-user/pickled"); res["pickle"] = "loaded"
    except FileNotFoundError as e:
        res["pickle"] = str(e)
    res["pull_rc"] = hub_main(["pull", "test-user/pickled", "--out", sys.argv[1]])
    # A repo whose safetensors lacks a tensor: strict loading names it.
    sd = m.state_dict(); del sd["G_BA.model.1.bias"]
    api.create_repo("test-user/incomplete")
    api.upload_file(path_or_fileobj=save(sd), path_in_repo="model.safetensors", repo_id="test-user/incomplete")
    api.upload_file(path_or_fileobj=cfg, path_in_repo="config.json", repo_id="test-user/incomplete")
    try:
        CycleGAN.from_pretrained("test-user/incomplete"); res["strict"] = "loaded"
    except ValueError as e:
        res["strict"] = str(e)
    # The mixin's own push_to_hub (huggingface_hub's upload pipeline) round-trips too.
    m.push_to_hub("test-user/mixin")
    back = CycleGAN.from_pretrained("test-user/mixin").state_dict()
    res["mixin"] = all(torch.equal(back[k], v) for k, v in m.state_dict().items())
    print(json.dumps(res))
"""


def test_pickle_repos_and_incomplete_weights_are_refused(hub_server, tmp_path):  # noqa: F811
    res = script(hub_server, tmp_path, REFUSALS, str(tmp_path / "pulled"))
    assert "has no model.safetensors" in res["pickle"] and "pickle" in res["pickle"]
    assert res["pull_rc"] == 2 and not (tmp_path / "pulled" / "pytorch_model.bin").exists()
    fetched = [p for m, p, _ in hub_server.state.log if m in ("GET", "HEAD") and p.endswith("pytorch_model.bin")]
    assert fetched == [], "the pickle file was downloaded"
    assert "missing tensors: G_BA.model.1.bias" in res["strict"]
    assert res["mixin"]


def test_card_lists_metrics_and_discriminators_when_known():
    config = {"name_A": "summer", "name_B": "winter", "netG": "resnet", "ngf": 8, "n_blocks": 3,
              "with_discriminators": True, "lambda_A": 10.0, "lambda_B": 5.0, "lambda_identity": 0.0}
    run = {"command": "python train/run.py --hf-dataset huggan/summer2winter --out r", "step": 7, "epoch": 1,
           "final_losses": {"G_total": 1.5}, "data": "huggan/summer2winter",
           "args": {"hf_dataset": "huggan/summer2winter", "lambda_A": 10.0, "lambda_B": 5.0, "no_gan": True}}
    card = model_card(config, repo_id="u/s2w", run=run, metrics={"PSNR cycle A (dB)": 23.456, "AtoB": {"SSIM": 0.5}}, app_url="https://x.y/app")
    meta = card_metadata(card)
    assert meta["datasets"] == ["huggan/summer2winter"] and validate_card_metadata(card) == []
    assert "| PSNR cycle A (dB) | 23.46 |" in card and "| AtoB / SSIM | 0.5 |" in card and "included (`D_A`, `D_B`" in card
    assert "cycle B→A→B 5" in card and "identity 0 × the cycle weight (off)" in card and "GAN 1 (off)" in card
    assert "[the CycleGAN app](https://x.y/app)" in card and "winter = model.G_AB(summer)" in card


def test_detached_server_listens_before_the_command_returns(tmp_path):
    import re
    import signal
    import urllib.error
    import urllib.request
    pid_file = tmp_path / "hub.pid"
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "hub_server.py"), "--port", "0", "--detach",
                        "--pid-file", str(pid_file)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    pid = int(pid_file.read_text())
    try:
        assert f"pid {pid}; stop it with: kill {pid}" in r.stdout
        url = re.search(r"http://127\.0\.0\.1:\d+", r.stdout).group(0)
        with pytest.raises(urllib.error.HTTPError) as e:  # answered at once (no token: 401), no waiting loop
            urllib.request.urlopen(f"{url}/api/whoami-v2", timeout=10)
        assert e.value.code == 401
    finally:
        os.kill(pid, signal.SIGTERM)


# -- hostile inputs: one line each, nothing written over ---------------------------------------------------------
@pytest.fixture
def tiny_model(tmp_path) -> Path:
    from cyclegan import CycleGAN
    CycleGAN(ngf=4, n_blocks=1, name_A="horse", name_B="zebra").save_pretrained(tmp_path / "tiny")
    return tmp_path / "tiny"


def one_sentence(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(".") and not lines[0].endswith(".."), err
    return lines[0]


def test_push_refuses_a_truncated_weights_file_and_a_bad_repo_id_in_one_line(tiny_model, capsys):
    from cyclegan.hub import main as hub_main
    weights = tiny_model / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:1000])             # the old check let safetensors' own error out as a traceback
    assert hub_main(["push", str(tiny_model), "test-user/x"]) == 4
    assert "is not a loadable CycleGAN model" in one_sentence(capsys.readouterr().err)
    weights.write_bytes(good)
    assert hub_main(["push", str(tiny_model), "not a repo"]) == 4   # refused before any request
    assert "'not a repo' is not a Hub repo id" in one_sentence(capsys.readouterr().err)


def test_pull_never_writes_over_a_users_files(tiny_model, tmp_path, capsys):
    from cyclegan.hub import main as hub_main
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"my": "own config"}')
    assert hub_main(["pull", str(tiny_model), "--out", str(mine)]) == 2
    assert "already holds different files" in one_sentence(capsys.readouterr().err)
    assert (mine / "config.json").read_text() == '{"my": "own config"}' and len(list(mine.iterdir())) == 1
    assert hub_main(["pull", str(tiny_model), "--out", str(mine), "--overwrite"]) == 0
    assert (mine / "config.json").read_bytes() == (tiny_model / "config.json").read_bytes()
    capsys.readouterr()
    before = digest(tiny_model)
    assert hub_main(["pull", str(tiny_model), "--out", str(tiny_model)]) == 2   # the old pull raised SameFileError
    assert "is the model folder itself" in one_sentence(capsys.readouterr().err)
    assert hub_main(["pull", str(tiny_model), "--out", str(mine / "config.json")]) == 2
    assert "is a file, not a folder" in one_sentence(capsys.readouterr().err)
    assert digest(tiny_model) == before


def test_pull_offline_copies_from_the_hub_cache_and_push_offline_says_so(hub_server, tiny_model, tmp_path):  # noqa: F811
    r = client(hub_server, tmp_path, ["-m", "cyclegan.hub", "push", str(tiny_model), "test-user/cached"])
    assert r.returncode == 0, r.stderr
    r = client(hub_server, tmp_path, ["-m", "cyclegan.hub", "pull", "test-user/cached", "--out", str(tmp_path / "a")])
    assert r.returncode == 0, r.stderr
    offline = {**hub_server.client_env(tmp_path), "HF_HUB_OFFLINE": "1"}
    env = {**os.environ, **offline, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "cyclegan.hub", "pull", "test-user/cached", "--out", str(tmp_path / "b")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr                # the old pull: "Cannot find an appropriate cached snapshot"
    assert digest(tmp_path / "b") == digest(tmp_path / "a")
    r = subprocess.run([sys.executable, "-m", "cyclegan.hub", "push", str(tiny_model), "test-user/cached"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 4 and "HF_HUB_OFFLINE is set" in one_sentence(r.stderr)
