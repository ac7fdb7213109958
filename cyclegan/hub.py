"""Publish a training run (or any CycleGAN model folder) to the Hugging Face Hub, and pull one back.

    python -m cyclegan.hub push RUN_DIR USER/REPO [--private]      # (re)publish RUN_DIR/model with its card
    python -m cyclegan.hub pull USER/REPO --out DIR [--revision R]  # a checked local copy (safetensors only)

A push uploads config.json, model.safetensors, README.md (the model card written from RUN_DIR/run.json),
samples.png (the last sample grid), losses.png and run.json in one commit. The token is huggingface_hub's
usual one (`hf auth login`, or HF_TOKEN); HF_ENDPOINT points it at another Hub. A failed upload raises
`HubPublishError`, changes nothing in the run, and says how to retry.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

if __name__ == "__main__":  # before torch is imported: Ctrl-C at any point ends with one line
    from .cli import quiet_interrupts
    quiet_interrupts("python -m cyclegan.hub")

from .card import LOSSES_FILE, SAMPLES_FILE, model_card, write_card
from .cli import fail, out_folder_problem, sentence

WEIGHTS, CONFIG = "model.safetensors", "config.json"
# What a pull copies: never a pickle (.bin, .pt, .pth, .ckpt) or code.
PULL_PATTERNS = [CONFIG, WEIGHTS, "README.md", "*.png", "run.json"]


class HubPublishError(RuntimeError):
    """An upload failed; the message (one sentence) says why and how to retry. The local files are untouched."""

    def __init__(self, message: str):
        super().__init__(sentence(message))


class PullError(ValueError):
    """A pull that would write over files or cannot write its output folder; nothing was written."""


def _model_dir(path: Path) -> Path:
    """RUN_DIR/model for a training run, or the folder itself when it is a model folder."""
    if (path / "model" / CONFIG).is_file():
        return path / "model"
    if (path / CONFIG).is_file():
        return path
    raise HubPublishError(f"{path} is neither a training run (RUN_DIR/model/{CONFIG}) nor a model folder "
                          f"({CONFIG} + {WEIGHTS})")


def check_model_folder(model_dir: Path) -> tuple[dict, int]:
    """Loads the folder as every user of the published repo will (`cyclegan.loading.load_model`: size limits,
    config checked, strict safetensors loading); returns (config as a dict, number of parameters). Raises
    HubPublishError with the loader's one-line reason."""
    from .loading import ModelLoadError, load_model

    try:
        model = load_model(str(model_dir))
    except ModelLoadError as e:
        raise HubPublishError(f"{model_dir} is not a loadable CycleGAN model, nothing to publish: {e}") from None
    return model.config.to_dict(), sum(t.numel() for t in model.state_dict().values())


def check_repo_id(repo_id: str, what: str = "Hub repo") -> str:
    """`repo_id` if it is a well-formed `user/name`, else HubPublishError (before any request)."""
    from .loading import REPO_ID

    if not REPO_ID.fullmatch(repo_id or "") or ".." in repo_id or "--" in repo_id or repo_id.endswith("."):
        example = "user/my-space" if what == "Space" else "user/my-model"
        raise HubPublishError(f"{repo_id!r} is not a {what} id like {example!r} (letters, digits, '-', '_' and '.', "
                              f"one slash)")
    return repo_id


def prepare(path: str | Path, repo_id: str | None, app_url: str | None = None) -> tuple[Path, list[Path]]:
    """Writes the model card (and copies the last sample grid) into the model folder; returns it and the files
    to upload. Repeating it gives the same files: a retry publishes exactly what the first attempt meant to."""
    path = Path(path)
    model_dir = _model_dir(path)
    config, n_params = check_model_folder(model_dir)
    run_dir = model_dir.parent if model_dir != path else path
    run = None
    run_json = run_dir / "run.json"
    if run_json.is_file():
        run = json.loads(run_json.read_text())
    converted = None
    conv_json = model_dir / "conversion.json"
    if conv_json.is_file():
        converted = json.loads(conv_json.read_text())
    metrics = (run or {}).get("metrics")
    if not metrics and (run_dir / "metrics.json").is_file():
        metrics = json.loads((run_dir / "metrics.json").read_text())

    samples = sorted((run_dir / "samples").glob("*.png"), key=lambda p: (p.stat().st_mtime, p.name))
    if samples and run_dir != model_dir:
        shutil.copyfile(samples[-1], model_dir / SAMPLES_FILE)
    losses = run_dir / LOSSES_FILE
    if losses.is_file() and run_dir != model_dir:
        shutil.copyfile(losses, model_dir / LOSSES_FILE)
    text = model_card(config, repo_id=repo_id, run=run, metrics=metrics, n_params=n_params,
                      samples=(model_dir / SAMPLES_FILE).is_file(), losses_plot=(model_dir / LOSSES_FILE).is_file(),
                      converted=converted, app_url=app_url, local_path=model_dir)
    write_card(model_dir, text)

    files = [model_dir / n for n in (CONFIG, WEIGHTS, "README.md", SAMPLES_FILE, LOSSES_FILE, "conversion.json")]
    files = [f for f in files if f.is_file()]
    if run is not None and run_dir != model_dir:
        files.append(run_json)
    return model_dir, files


def short_reason(e: BaseException) -> str:
    """An exception as one line of at most ~600 characters (the client raises HTTP, connection, validation and OS
    errors alike, some over many lines)."""
    reason = " ".join(str(e).split()) or type(e).__name__
    return reason[:600] + " ..." if len(reason) > 600 else reason


def commit_files(repo_id: str, files: dict[str, Path | bytes], *, retry: str, intact: str, repo_type: str = "model",
                 private: bool = False, token: str | None = None, commit_message: str = "Upload (cyclegan)",
                 space_sdk: str | None = None, delete: list[str] | None = None, before_commit=None):
    """Creates the repo if needed (a Space with `space_sdk`) and commits FILES (path in repo -> local file or
    bytes) in one commit, deleting the repo paths in `delete` (None: ask for none; a callable(api, repo_id,
    remote_paths) -> paths may choose from the repo's current files). `before_commit(api, repo_id)` runs after
    the repo exists, before the commit (e.g. to set Space variables). Returns (RepoUrl, commit oid).

    No token, or any failure of the client: HubPublishError with one reason, `intact` (what was left
    untouched) and the command that retries (`retry`). Binary files go through LFS/Xet as the Hub decides."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise HubPublishError(f"HF_HUB_OFFLINE is set, so nothing can be uploaded. {intact} Unset HF_HUB_OFFLINE and "
                              f"retry with `{retry}`")
    if token is None and get_token() is None:
        raise HubPublishError(f"no Hugging Face token: log in with `hf auth login` or set HF_TOKEN, then retry with "
                              f"`{retry}`")
    try:
        api = HfApi(token=token)
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk)
        if before_commit is not None:
            before_commit(api, url.repo_id)
        ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=data if isinstance(data, bytes) else str(data))
               for name, data in files.items()]
        if callable(delete):
            remote = api.list_repo_files(url.repo_id, repo_type=repo_type)
            delete = delete(api, url.repo_id, remote)
        ops += [CommitOperationDelete(path_in_repo=name) for name in (delete or []) if name not in files]
        info = api.create_commit(url.repo_id, ops, repo_type=repo_type, commit_message=commit_message)
    except Exception as e:  # noqa: BLE001 - every client error becomes one line and a retry command
        raise HubPublishError(f"upload to {repo_id} at {constants.ENDPOINT} failed: {type(e).__name__}: "
                              f"{short_reason(e).rstrip('. ')}. {intact} Retry with `{retry}`") from e
    return url, info.oid


def push(path: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
         commit_message: str | None = None, app_url: str | None = None) -> tuple[str, str]:
    """Publishes a run or model folder in one commit. Returns (repo url, commit id)."""
    path = Path(path)
    check_repo_id(repo_id)
    retry = f"python -m cyclegan.hub push {path} {repo_id}" + (" --private" if private else "")
    model_dir, files = prepare(path, repo_id, app_url)
    url, oid = commit_files(repo_id, {f.name: f for f in files}, retry=retry, private=private, token=token,
                            intact=f"The run is intact ({model_dir}).",
                            commit_message=commit_message or f"Upload {path.name} (cyclegan)")
    return str(url), oid


def publish_run(run_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None,
                app_url: str | None = None) -> str:
    """What `train/run.py --push-to-hub` calls: publish RUN_DIR/model with its card; returns the repo url."""
    url, commit = push(run_dir, repo_id, private=private, token=token, app_url=app_url)
    return f"{url} (commit {commit[:12]})"


def pull(repo_or_dir: str, out: str | Path, revision: str | None = None, token: str | None = None,
         overwrite: bool = False) -> Path:
    """Copies a published model (config.json, model.safetensors, its card, PNGs and run.json; never a pickle)
    into OUT after loading it strictly (cyclegan.loading.load_model: a missing path, a repo without
    model.safetensors or over the size limit, or a hostile config is refused before the weights are downloaded;
    Hub errors are one line). With HF_HUB_OFFLINE=1 a repo already in the Hub cache is copied from there.

    Raises PullError before anything is written when OUT cannot be written, is the model folder itself, or
    holds different files of the same names (unless `overwrite`); ModelLoadError (a ValueError) for the model."""
    from .loading import hub_error, load_model

    out = Path(out)
    local = Path(repo_or_dir).is_dir()
    problem = out_folder_problem(str(out))
    if problem is None and local and out.is_dir() and out.resolve() == Path(repo_or_dir).resolve():
        problem = f"--out {out} is the model folder itself: name another folder"
    if problem:
        raise PullError(problem)
    spec = f"{repo_or_dir}@{revision}" if revision and not local else repo_or_dir
    model = load_model(spec, token=token)
    if local:
        source = Path(repo_or_dir)
    else:
        from huggingface_hub import snapshot_download
        try:  # into huggingface_hub's cache first (offline: from it), then copied like a local folder
            source = Path(snapshot_download(repo_or_dir, revision=revision, token=token,
                                            allow_patterns=PULL_PATTERNS))
        except Exception as e:  # noqa: BLE001 - every client error becomes one line
            raise hub_error(e, spec) from None
    import fnmatch
    files = sorted(f for f in source.iterdir() if f.is_file() and any(fnmatch.fnmatch(f.name, p) for p in PULL_PATTERNS))
    clash = [out / f.name for f in files if (out / f.name).exists() and not _same_bytes(f, out / f.name)]
    if clash and not overwrite:
        listed = ", ".join(str(p) for p in clash[:4]) + (" ..." if len(clash) > 4 else "")
        raise PullError(f"{out} already holds different files of the same names ({listed}): pass --overwrite to "
                        f"replace them, or choose another --out. Nothing was written")
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        staging = out / f".{f.name}.partial"
        shutil.copyfile(f, staging)          # whole or not at all: renamed into place once complete
        os.replace(staging, out / f.name)
    print(f"{model.direction_label('AtoB')} / {model.direction_label('BtoA')} from {model.source} -> {out}")
    return out


def _same_bytes(a: Path, b: Path) -> bool:
    if not b.is_file() or a.stat().st_size != b.stat().st_size:
        return False
    return a.read_bytes() == b.read_bytes()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cyclegan.hub", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("push", help="publish a training run (RUN_DIR/model + card) or a model folder")
    s.add_argument("path", metavar="RUN_DIR", help="a train/run.py run folder, or a folder with config.json and "
                                                   "model.safetensors (e.g. from cyclegan.convert)")
    s.add_argument("repo_id", metavar="USER/REPO")
    s.add_argument("--private", action="store_true", help="create the repo as private (if it does not exist)")
    s.add_argument("--message", default=None, help="commit message")
    s.add_argument("--app-url", default=None, help="link to the app in the card (default: $CYCLEGAN_APP_URL)")
    s = sub.add_parser("pull", help="download a model (safetensors only) and check that it loads strictly")
    s.add_argument("repo", metavar="REPO_OR_DIR")
    s.add_argument("--out", required=True, help="folder to write config.json, model.safetensors and the card to")
    s.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    s.add_argument("--overwrite", action="store_true", help="replace files in --out that differ from the model's")
    args = p.parse_args(argv)
    if args.cmd == "push":
        try:
            url, commit = push(args.path, args.repo_id, private=args.private, commit_message=args.message,
                               app_url=args.app_url)
        except HubPublishError as e:
            return fail(e, 4)
        print(f"published {args.path} to {url} (commit {commit})")
        return 0
    try:
        pull(args.repo, args.out, revision=args.revision, overwrite=args.overwrite)
    except (OSError, ValueError) as e:
        return fail(e, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
