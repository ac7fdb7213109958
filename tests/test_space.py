"""`python -m cyclegan.space deploy`: a Gradio Space created or updated through huggingface_hub's API, against
the local Hub server (tests/hub_server.py): what is uploaded, what never is, the model box setting, publishing
the models, a failed upload and its retry, a redeploy."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cyclegan import CycleGAN
from cyclegan.card import card_metadata
from cyclegan.hub import HubPublishError
from cyclegan.space import readme_for_space
from hub_server import hub_server, validate_card_metadata  # noqa: F401  (pytest fixture)

ROOT = Path(__file__).resolve().parents[1]


def deploy(hub, tmp_path, *args: str, drop_env=()) -> subprocess.CompletedProcess:
    env = {**os.environ, **hub.client_env(tmp_path), "PYTHONPATH": str(ROOT)}
    for k in drop_env:
        env.pop(k, None)
    return subprocess.run([sys.executable, "-m", "cyclegan.space", "deploy", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def expected_upload(root: Path) -> set[str]:
    """What a Space needs, listed independently of cyclegan.space's patterns."""
    out = {n for n in ("app.py", "requirements.txt", "README.md", "LICENSE", "packages.txt") if (root / n).is_file()}
    for folder in ("cyclegan", "models", "examples"):
        out |= {p.relative_to(root).as_posix() for p in (root / folder).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and not any(s.startswith(".") for s in p.parts)
                and p.suffix not in (".part", ".tmp", ".onnx", ".pyc")}  # caches and partial downloads
    return out


@pytest.fixture()
def tree(tmp_path) -> Path:
    """A copy of this checkout with what a working tree accumulates: runs, caches, bytecode, benchmark outputs."""
    root = tmp_path / "checkout"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", ".gradio",
                                                                "runs", "test-artifacts", "*.pyc"))
    junk = ["runs/h2z/checkpoint.safetensors", ".gradio/cached_examples/x.png", "cyclegan/__pycache__/model.pyc",
            "models/photo2sketch/.cache/onnx/G.onnx", "models/photo2sketch/model.safetensors.part",
            "bench/results.json", "tests/extra_test.py", "docs/screenshot-new.png", ".env", "examples/.DS_Store",
            "notes.tmp"]
    for j in junk:
        (root / j).parent.mkdir(parents=True, exist_ok=True)
        (root / j).write_bytes(b"junk")
    return root


def test_deploy_uploads_what_a_space_needs_and_nothing_else(hub_server, tree, tmp_path):  # noqa: F811
    before = digest(tree)
    r = deploy(hub_server, tmp_path, "test-user/cyclegan-demo", "--root", str(tree), "--model-box", "allowlist")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"Space deployed: {hub_server.url}/spaces/test-user/cyclegan-demo" in r.stdout

    repo = hub_server.state.repos[("space", "test-user/cyclegan-demo")]
    assert repo.sdk == "gradio" and not repo.private
    files = hub_server.files("test-user/cyclegan-demo", repo_type="space")
    uploaded = set(files) - {".gitattributes"}
    assert uploaded == expected_upload(tree)
    assert {"app.py", "requirements.txt", "README.md", "cyclegan/__init__.py", "cyclegan/space.py",
            "models/photo2sketch/model.safetensors", "examples/SOURCES.md"} <= uploaded
    assert not any(p.startswith(("tests/", "runs/", "bench/", "docs/", "train/", ".gradio/", "scripts/")) or
                   "__pycache__" in p or "/." in p or p.endswith((".part", ".tmp", ".onnx")) for p in uploaded)
    assert files["models/photo2sketch/model.safetensors"] == (tree / "models/photo2sketch/model.safetensors").read_bytes()
    assert len(repo.history()) == 2, "one commit for the whole deployment"
    assert repo.variables["CYCLEGAN_MODEL_BOX"]["value"] == "allowlist"

    readme = files["README.md"].decode()
    meta = card_metadata(readme)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and validate_card_metadata(readme) == []
    assert digest(tree) == before, "deploying changed the working tree"


def small_tree(root: Path) -> Path:
    """An app folder with two tiny models (the default and an ablation) and a README with front matter."""
    for rel in ("models/default", "models/ablation/gan_alone"):
        torch.manual_seed(0)
        CycleGAN(name_A="photo", name_B="sketch", ngf=4, n_blocks=1).save_pretrained(root / rel)
        (root / rel / "README.md").write_text(f'# {rel}\n\nmodel = CycleGAN.from_pretrained("{rel}")\n')
    (root / "cyclegan").mkdir(parents=True)
    (root / "cyclegan" / "__init__.py").write_text("")
    (root / "app.py").write_text("print('app')\n")
    (root / "requirements.txt").write_text("gradio\n")
    (root / "README.md").write_text("---\ntitle: demo\nsdk: gradio\napp_file: app.py\nmodels: []  # later\n---\n"
                                    "# demo\n")
    (root / "examples").mkdir()
    (root / "examples" / "a.txt").write_text("a")
    return root


def test_publish_models_failed_upload_retry_and_redeploy(hub_server, tmp_path):  # noqa: F811
    root = small_tree(tmp_path / "app")
    before = digest(root)

    r = deploy(hub_server, tmp_path, "test-user/demo2", "--root", str(root), drop_env=("HF_TOKEN",))
    assert r.returncode == 4 and "no Hugging Face token" in r.stderr and "HF_TOKEN" in r.stderr
    assert ("space", "test-user/demo2") not in hub_server.state.repos

    hub_server.fail("POST", r"^/api/spaces/test-user/demo2/commit/", times=1)
    r = deploy(hub_server, tmp_path, "test-user/demo2", "--root", str(root), "--publish-models", "--private")
    assert r.returncode == 4, r.stdout + r.stderr
    assert "Nothing in your working tree was changed. Retry with `python -m cyclegan.space deploy test-user/demo2 " \
           "--private --publish-models`." in r.stderr
    assert "500" in r.stderr and r.stderr.count("\n") <= 2
    assert digest(root) == before

    r = deploy(hub_server, tmp_path, "test-user/demo2", "--root", str(root), "--publish-models", "--private")
    assert r.returncode == 0, r.stderr[-3000:]
    assert digest(root) == before, "the local README or a model card was edited"
    ids = ["test-user/cyclegan-ablation-gan_alone", "test-user/cyclegan-default"]
    for repo_id, rel in zip(ids, ["models/ablation/gan_alone", "models/default"]):
        files = hub_server.files(repo_id)
        assert files["model.safetensors"] == (root / rel / "model.safetensors").read_bytes()
        assert f'from_pretrained("{repo_id}")' in files["README.md"].decode()
        assert hub_server.state.repos[("model", repo_id)].private
    space = hub_server.files("test-user/demo2", repo_type="space")
    assert card_metadata(space["README.md"].decode())["models"] == ids
    assert hub_server.state.repos[("space", "test-user/demo2")].private
    assert "CYCLEGAN_MODEL_BOX" not in hub_server.state.repos[("space", "test-user/demo2")].variables

    # A redeploy after a file was removed locally removes it from the Space too (in the same single commit).
    (root / "examples" / "a.txt").unlink()
    (root / "examples" / "b.txt").write_text("b")
    r = deploy(hub_server, tmp_path, "test-user/demo2", "--root", str(root), "--model-box", "off")
    assert r.returncode == 0, r.stderr[-3000:]
    space = hub_server.files("test-user/demo2", repo_type="space")
    assert "examples/a.txt" not in space and "examples/b.txt" in space and ".gitattributes" in space
    assert card_metadata(space["README.md"].decode())["models"] == []  # not published this time: the local list
    assert hub_server.state.repos[("space", "test-user/demo2")].variables["CYCLEGAN_MODEL_BOX"]["value"] == "off"


def test_dry_run_lists_and_uploads_nothing(hub_server, tmp_path):  # noqa: F811
    root = small_tree(tmp_path / "app")
    r = deploy(hub_server, tmp_path, "test-user/dry", "--root", str(root), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "models/default/model.safetensors" in r.stdout and "would be uploaded" in r.stdout
    assert ("space", "test-user/dry") not in hub_server.state.repos


def test_readme_front_matter_for_the_space():
    text = "---\ntitle: x\nsdk: gradio\nmodels:\n  - old/one\n  - old/two\nlicense: mit\n---\n# body\n"
    out = readme_for_space(text, ["u/a", "u/b"])
    assert card_metadata(out)["models"] == ["u/a", "u/b"] and card_metadata(out)["license"] == "mit"
    assert out.endswith("---\n# body\n")
    assert card_metadata(readme_for_space(text))["models"] == ["old/one", "old/two"]  # no list given: kept
    bare = readme_for_space("# just a body\n", ["u/a"])
    meta = card_metadata(bare)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["models"] == ["u/a"]
    with pytest.raises(HubPublishError, match="sdk: docker"):
        readme_for_space("---\nsdk: docker\n---\n")


def test_this_readme_is_a_valid_space_card():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    meta = card_metadata(readme_for_space(text, ["test-user/cyclegan-photo2sketch"]))
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["models"] == ["test-user/cyclegan-photo2sketch"]
    assert validate_card_metadata(readme_for_space(text, ["test-user/x"])) == []


def test_a_broken_model_folder_or_readme_is_one_line_before_any_upload(tmp_path, capsys, monkeypatch):
    """A truncated weights file under models/ (with --publish-models) and a README that is not UTF-8 were raw
    tracebacks (SafetensorError, UnicodeDecodeError); both are refused before anything is uploaded."""
    from cyclegan import CycleGAN
    from cyclegan.space import main as space_main
    root = tmp_path / "app"
    (root / "cyclegan").mkdir(parents=True)
    for name in ("app.py", "requirements.txt", "cyclegan/__init__.py"):
        (root / name).write_text("")
    (root / "README.md").write_text("---\nsdk: gradio\n---\n")
    CycleGAN(ngf=4, n_blocks=1).save_pretrained(root / "models" / "m")
    weights = root / "models" / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    monkeypatch.setenv("HF_TOKEN", "x")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # nothing may be sent anywhere
    assert space_main(["deploy", "test-user/s", "--root", str(root), "--publish-models"]) == 4
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("is not a loadable CycleGAN model, nothing to publish: could not "
                                              "load " + str(root / "models" / "m") + ": " + str(weights) +
                                              " is not a readable safetensors file: Error while deserializing "
                                              "header: invalid header length."), err
    (root / "README.md").write_bytes(b"\xff\xfe not utf-8")
    assert space_main(["deploy", "test-user/s", "--root", str(root), "--dry-run"]) == 4
    err = capsys.readouterr().err.strip()
    assert "cannot be read as UTF-8 text" in err and "\n" not in err and err.endswith("."), err
    assert space_main(["deploy", "bad id", "--root", str(root)]) == 4
    assert "'bad id' is not a Space id like 'user/my-space'" in capsys.readouterr().err
