"""Deploy the app as a Hugging Face Space in one command, through huggingface_hub's API.

    python -m cyclegan.space deploy USER/SPACE [--private] [--model-box off|allowlist|open] [--publish-models]

Creates the Space (Gradio SDK) if it does not exist, then uploads what the Space runs, in one commit: app.py,
cyclegan/, requirements.txt, README.md (its front matter is the Space's configuration), LICENSE, models/ and
examples/; never tests, training runs, caches or benchmark outputs. Files of an earlier deployment that are no
longer in the working tree are deleted in the same commit. The API stores the binary files (weights, PNGs)
through LFS/Xet itself, which is why this works where a plain `git push` of this repository is refused (the Hub
rejects pushed binary files over about 1 MB that are not in LFS/Xet, in the whole pushed history).

--publish-models first publishes each model folder under models/ (the embedded default and the ablation models)
as a model repo USER/cyclegan-NAME, and lists those repo ids under `models:` in the UPLOADED README's front
matter (the local README is never edited). --model-box sets the Space variable CYCLEGAN_MODEL_BOX, which the app
reads: `off` (the startup model only), `allowlist` (the picker's models: embedded, ablation and released, plus
CYCLEGAN_MODEL_ALLOW), `open` (also any local folder or Hub repo id). The token is huggingface_hub's
(`hf auth login`, or HF_TOKEN); HF_ENDPOINT points it at another Hub. A failed upload changes nothing locally
and prints the command that retries it (exit status 4).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

if __name__ == "__main__":  # before torch is imported: Ctrl-C at any point ends with one line
    from .cli import quiet_interrupts
    quiet_interrupts("python -m cyclegan.space")

from .cli import fail
from .hub import CONFIG, WEIGHTS, HubPublishError, check_model_folder, check_repo_id, commit_files

ROOT = Path(__file__).resolve().parents[1]
# What a Space needs, as huggingface_hub patterns (fnmatch; `*` crosses folders).
ALLOW_PATTERNS = ["app.py", "requirements.txt", "packages.txt", "README.md", "LICENSE", "cyclegan/*", "models/*",
                  "examples/*"]
# Never uploaded, even under an allowed folder: bytecode, hidden files and folders (.gradio, .cache), partial
# downloads and temporary files, ONNX exports (a cache the app rebuilds).
IGNORE_PATTERNS = ["*__pycache__*", "*.pyc", ".*", "*/.*", "*.part", "*.tmp", "*.onnx", "*~"]
MODEL_BOX_VARIABLE = "CYCLEGAN_MODEL_BOX"
MODEL_BOX_MODES = ("off", "allowlist", "open")
FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*(\n|\Z)", re.S)


def space_files(root: str | Path = ROOT) -> dict[str, Path]:
    """Path in the Space -> local file: the working tree's files that the ALLOW/IGNORE patterns keep."""
    from huggingface_hub.utils import filter_repo_objects

    root = Path(root)
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    kept = filter_repo_objects(paths, allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS)
    return {p: root / p for p in kept}


def model_folders(root: str | Path = ROOT) -> list[Path]:
    """Every folder under ROOT/models holding config.json and model.safetensors, sorted."""
    return sorted(c.parent for c in (Path(root) / "models").rglob(CONFIG) if (c.parent / WEIGHTS).is_file())


def model_repo_id(namespace: str, folder: Path, root: str | Path = ROOT) -> str:
    """models/ablation/full -> NAMESPACE/cyclegan-ablation-full."""
    rel = folder.relative_to(Path(root) / "models").as_posix()
    return f"{namespace}/cyclegan-{rel.replace('/', '-')}"


def readme_for_space(text: str, models: list[str] | None = None) -> str:
    """The README with its front matter's `models:` set to MODELS (when given). A README without front matter
    gets the minimal one a Gradio Space needs. Raises HubPublishError if the front matter says another SDK."""
    m = FRONT_MATTER.match(text)
    if not m:
        text = ("---\ntitle: CycleGAN\nsdk: gradio\napp_file: app.py\nlicense: mit\nmodels: []\n---\n" + text)
        m = FRONT_MATTER.match(text)
    meta = m.group(1)
    sdk = re.search(r"^sdk:\s*(\S+)", meta, re.M)
    if sdk and sdk.group(1).strip("'\"") != "gradio":
        raise HubPublishError(f"README.md's front matter says sdk: {sdk.group(1)}; this app is a Gradio Space "
                              f"(sdk: gradio)")
    if not sdk:
        meta += "sdk: gradio\n"
    if not re.search(r"^app_file:", meta, re.M):
        meta += "app_file: app.py\n"
    if models is not None:
        line = "models: [" + ", ".join(models) + "]\n"
        # the key's line, plus a block list under it ("- id" lines), is replaced; comments on it go
        pattern = re.compile(r"^models:[^\n]*\n(?:[ \t]*-[^\n]*\n)*", re.M)
        meta = pattern.sub(lambda _: line, meta, count=1) if pattern.search(meta) else meta + line
    return f"---\n{meta}---\n" + text[m.end():]


def _card_for_repo(folder: Path, repo_id: str, root: Path) -> bytes | None:
    """The folder's model card with its local path replaced by the repo id (the file itself is not changed)."""
    card = folder / "README.md"
    if not card.is_file():
        return None
    rel = folder.relative_to(root).as_posix()
    return card.read_text(encoding="utf-8").replace(f'"{rel}"', f'"{repo_id}"').encode()


def publish_models(namespace: str, *, root: str | Path = ROOT, private: bool = False, token: str | None = None,
                   retry: str) -> list[str]:
    """Publishes every model folder under ROOT/models as NAMESPACE/cyclegan-NAME (config.json, model.safetensors,
    its card and PNGs; each checked to load strictly first). Returns the repo ids."""
    root = Path(root)
    ids = []
    for folder in model_folders(root):
        repo_id = model_repo_id(namespace, folder, root)
        check_model_folder(folder)
        files: dict[str, Path | bytes] = {n: folder / n for n in (CONFIG, WEIGHTS)}
        files.update({p.name: p for p in sorted(folder.glob("*.png"))})
        card = _card_for_repo(folder, repo_id, root)
        if card is not None:
            files["README.md"] = card
        commit_files(repo_id, files, retry=retry, private=private, token=token,
                     intact="Nothing in your working tree was changed.",
                     commit_message=f"Upload {folder.relative_to(root).as_posix()} (cyclegan.space deploy)")
        print(f"published {folder.relative_to(root)} -> {repo_id}", flush=True)
        ids.append(repo_id)
    return ids


def _stale(upload: dict[str, Path | bytes]):
    """The deletions of a redeploy: files of the Space that the patterns cover but the tree no longer has."""
    from huggingface_hub.utils import filter_repo_objects

    def choose(api, repo_id, remote: list[str]) -> list[str]:
        covered = filter_repo_objects(remote, allow_patterns=ALLOW_PATTERNS)
        return sorted(p for p in covered if p not in upload and p != ".gitattributes")

    return choose


def deploy(space_id: str, *, root: str | Path = ROOT, private: bool = False, token: str | None = None,
           model_box: str | None = None, publish: bool = False, dry_run: bool = False,
           commit_message: str | None = None) -> str:
    """Creates or updates the Gradio Space SPACE_ID from the working tree at ROOT; returns the Space's URL (or,
    with dry_run, lists what would be uploaded and returns ""). Raises HubPublishError (one line plus the retry
    command); the working tree is never modified."""
    root = Path(root)
    retry = (f"python -m cyclegan.space deploy {space_id}" + (" --private" if private else "")
             + (f" --model-box {model_box}" if model_box else "") + (" --publish-models" if publish else ""))
    if model_box is not None and model_box not in MODEL_BOX_MODES:
        raise HubPublishError(f"--model-box {model_box!r}: use one of {', '.join(MODEL_BOX_MODES)}")
    check_repo_id(space_id, "Space")
    for need in ("app.py", "requirements.txt", "cyclegan/__init__.py", "README.md"):
        if not (root / need).is_file():
            raise HubPublishError(f"{root / need} is missing: run this from a checkout of the CycleGAN app (or "
                                  f"name one with --root)")
    files: dict[str, Path | bytes] = dict(space_files(root))
    try:
        readme = (root / "README.md").read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise HubPublishError(f"{root / 'README.md'} cannot be read as UTF-8 text ({e}); the Space's README must be "
                              f"UTF-8") from None
    if dry_run:
        for name, path in files.items():
            print(f"{path.stat().st_size:>12,d}  {name}")
        print(f"{len(files)} files, {sum(p.stat().st_size for p in files.values()) / 1e6:.1f} MB would be uploaded "
              f"to the Space {space_id}")
        readme_for_space(readme)  # the front matter is checked even on a dry run
        return ""
    models = publish_models(space_id.split("/")[0], root=root, private=private, token=token, retry=retry) \
        if publish else None
    files["README.md"] = readme_for_space(readme, models).encode()

    def set_model_box(api, repo_id):
        if model_box is not None:
            api.add_space_variable(repo_id, MODEL_BOX_VARIABLE, model_box,
                                   description="the app's model box: off | allowlist | open (cyclegan.space deploy)")

    url, _ = commit_files(space_id, files, retry=retry, intact="Nothing in your working tree was changed.",
                          repo_type="space", space_sdk="gradio", private=private, token=token,
                          commit_message=commit_message or "Deploy the CycleGAN app (python -m cyclegan.space deploy)",
                          delete=_stale(files), before_commit=set_model_box)
    return str(url)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cyclegan.space", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Uploaded: " + ", ".join(ALLOW_PATTERNS) + "\nNever uploaded: "
                                       + ", ".join(IGNORE_PATTERNS) + " (and everything else: tests/, runs/, bench/, "
                                                                     "docs/, train/, caches)")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("deploy", help="create or update a Gradio Space with this app; prints its URL")
    d.add_argument("space_id", metavar="USER/SPACE")
    d.add_argument("--private", action="store_true", help="create the Space as private (if it does not exist)")
    d.add_argument("--model-box", choices=MODEL_BOX_MODES, default=None,
                   help=f"set the Space variable {MODEL_BOX_VARIABLE}: off (the startup model only), allowlist (the "
                        "picker's models: embedded, ablation, released), open (also any folder or Hub repo id); "
                        "default: leave it as it is")
    d.add_argument("--publish-models", action="store_true",
                   help="first publish each model under models/ as USER/cyclegan-NAME and list them under `models:` "
                        "in the uploaded README's front matter")
    d.add_argument("--root", default=str(ROOT), help="the app's folder (default: this checkout)")
    d.add_argument("--message", default=None, help="commit message")
    d.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded; upload nothing")
    args = p.parse_args(argv)
    try:
        url = deploy(args.space_id, root=args.root, private=args.private, model_box=args.model_box,
                     publish=args.publish_models, dry_run=args.dry_run, commit_message=args.message)
    except HubPublishError as e:
        return fail(e, 4)
    if url:
        print(f"Space deployed: {url}" + (f" (model box: {args.model_box})" if args.model_box else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
