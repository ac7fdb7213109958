"""Load a CycleGAN from a local folder or a Hub repo, checking everything that can be checked first.

    from cyclegan.loading import load_model
    model = load_model("models/photo2sketch")          # a local folder: config.json + model.safetensors
    model = load_model("user/name@v1")                 # a Hub repo at a branch, tag or commit

What is refused, each with one line (a `ModelLoadError`, a ValueError) that names the file, field or limit:
- a local path that does not exist: reported at once as a missing path, never sent to the Hub. Only a
  well-formed `user/name[@revision]` whose first part is not an existing local folder goes to the Hub;
- a model outside the deployment's allow list (`allow=`);
- a Hub repo whose metadata (file list and sizes, read before anything is downloaded) shows no
  model.safetensors or no config.json, or a weights file over `max_weight_bytes` (1 GB by default), or a
  config.json over 64 kB; the same limits hold for a local folder;
- a config.json that `CycleGANConfig.validate()` rejects (sizes, kinds, memory estimate), checked before any
  network is built; weights that do not match their config (strict loading, cyclegan.model);
- Hub failures: repository not found, revision not found, file not found, not authorised or gated, offline
  (HF_HUB_OFFLINE, or the endpoint unreachable), a download over its time limit: each says what to do.

A Hub download is pinned to the commit whose metadata was checked, has a time limit (`timeout_s`), and is shared:
callers asking for the same repo and revision at once wait for one download (a lock per endpoint, repo and
revision) and then load from huggingface_hub's cache without another request. With `cache_dir` and
`max_cache_bytes`, the cache of downloaded models is bounded (least recently used repos go first).
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from .config import ConfigError, CycleGANConfig
from .model import CycleGAN

WEIGHTS, CONFIG = "model.safetensors", "config.json"
DEFAULT_MAX_WEIGHT_BYTES = 1 << 30          # 1 GiB: the paper's model (ngf 64, 9 blocks) is about 45 MB
MAX_CONFIG_BYTES = 64 << 10                 # a CycleGAN config.json is a few hundred bytes
DEFAULT_TIMEOUT_S = 300.0                   # whole download of one model
METADATA_TIMEOUT_S = 15.0                   # one metadata request
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Hub repo ids: "user/name" with the Hub's characters; an optional "@revision" (branch, tag or commit).
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
REVISION = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_./-]{0,199}")


class ModelLoadError(ValueError):
    """A model that cannot be loaded, with a one-line reason and what to do. `kind` says which case it is."""

    kind = "invalid"

    def __init__(self, message: str, kind: str | None = None):
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class MissingModelPath(ModelLoadError):
    """A local path that does not exist (never sent to the Hub)."""

    kind = "missing-path"


class ModelRefused(ModelLoadError):
    """A model refused before building or downloading it: too large, no safetensors, bad config, not allowed."""

    kind = "refused"


class HubLoadError(ModelLoadError):
    """The Hub said no, or could not be reached. kind: repo-not-found, revision-not-found, file-not-found,
    not-authorised, gated, offline, timeout, hub-error."""

    kind = "hub-error"


def human_bytes(n: float) -> str:
    """1234567 -> "1.2 MB" (decimal units, as the Hub shows file sizes)."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{int(n)} bytes"


_mb = human_bytes


# -- what a spec is ---------------------------------------------------------------------------------------------
def parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    """("local", path, None) or ("hub", repo_id, revision) for a model spec, without touching the network.

    A spec that exists on disk is local. A well-formed `user/name[@revision]` goes to the Hub unless its first
    part is an existing local folder (then `models/nosuch` is a missing path, not a repo). Anything else that
    does not exist is a missing path. Raises MissingModelPath."""
    spec = (spec or "").strip()
    if not spec:
        raise MissingModelPath("no model given: name a local model folder or a Hub repo id like 'user/name'")
    if os.path.exists(os.path.expanduser(spec)):
        return "local", os.path.expanduser(spec), None
    repo, at, revision = spec.partition("@")
    looks_like_repo = (REPO_ID.fullmatch(repo) is not None and (not at or REVISION.fullmatch(revision))
                       and ".." not in repo and "--" not in repo and not repo.endswith(".") and "\\" not in spec)
    if looks_like_repo and not os.path.isdir(repo.split("/")[0]):
        return "hub", repo, revision or None
    parent = Path(os.path.expanduser(spec)).parent
    where = "no such file or folder"
    if parent.is_dir():
        import difflib
        close = difflib.get_close_matches(Path(spec).name, [p.name for p in parent.iterdir() if p.is_dir()], n=1)
        where = (f"{parent} has no {Path(spec).name!r}" if str(parent) != "." else "no such file or folder") + \
            (f"; the closest name there is {(parent / close[0]).as_posix()!r}" if close else "")
    raise MissingModelPath(f"model folder {spec!r} does not exist ({where}); a local model is a folder holding "
                           f"{CONFIG} and {WEIGHTS}, a Hub model is named 'user/name' or 'user/name@revision'")


def _allowed(kind: str, target: str, revision: str | None, allow: Iterable[str]) -> bool:
    for entry in allow:
        entry = str(entry).strip()
        if kind == "local":
            if os.path.exists(os.path.expanduser(entry)) and \
                    Path(os.path.expanduser(entry)).resolve() == Path(target).resolve():
                return True
        else:
            repo, _, rev = entry.partition("@")
            if repo == target and (not rev or rev == (revision or "main")):
                return True
    return False


# -- config checks ------------------------------------------------------------------------------------------
def check_config(config: dict, where: str) -> dict:
    """The architecture arguments of a config.json, checked before any tensor is allocated (through
    `cyclegan.config.CycleGANConfig.validate()` where it exists). Raises ModelRefused naming the field."""
    if not isinstance(config, dict):
        raise ModelRefused(f"{where}: {CONFIG} must hold a JSON object, found {type(config).__name__}")
    try:
        CycleGANConfig.from_dict(config).validate()
    except ConfigError as e:
        raise ModelRefused(f"{where}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ModelRefused(f"{where}: {CONFIG} is not a CycleGAN config: {e}") from None
    return config


def _read_config(path: Path, where: str) -> dict:
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ModelRefused(f"{where}: {CONFIG} is {_mb(size)}, over the {_mb(MAX_CONFIG_BYTES)} limit for a config")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelRefused(f"{where}: {CONFIG} is not valid JSON ({e})") from None


# -- local folders --------------------------------------------------------------------------------------------
def _load_local(path: str, max_weight_bytes: int) -> CycleGAN:
    folder = Path(path)
    if not folder.is_dir():
        raise ModelRefused(f"{path} is a file; a model is a folder holding {CONFIG} and {WEIGHTS} "
                           f"(a reference-implementation .pth converts with `python -m cyclegan.convert`)")
    if not (folder / CONFIG).is_file():
        raise ModelRefused(f"{path} holds no {CONFIG}: not a CycleGAN model folder")
    weights = folder / WEIGHTS
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        raise ModelRefused(f"{path} holds no {WEIGHTS}" + (f" (only {', '.join(pickles)}: pickle files are never "
                           "loaded, they can run code)" if pickles else ""))
    size = weights.stat().st_size
    if size > max_weight_bytes:
        raise ModelRefused(f"{weights} is {_mb(size)}, over the {_mb(max_weight_bytes)} limit for model weights")
    check_config(_read_config(folder / CONFIG, path), path)
    try:
        model = CycleGAN.from_pretrained(str(folder))
    except (ValueError, OSError, TypeError, RuntimeError) as e:
        raise ModelRefused(f"could not load {path}: {' '.join(str(e).split())[:400]}") from None
    return model.eval()


# -- the Hub --------------------------------------------------------------------------------------------------
_locks: dict[tuple[str, str, str], threading.Lock] = {}
_locks_guard = threading.Lock()
_cache_lock = threading.RLock()  # held while a model loads from a cache_dir and while that cache is pruned


def _download_lock(endpoint: str, repo: str, revision: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((endpoint, repo, revision), threading.Lock())


def hub_error(e: BaseException, spec: str, endpoint: str | None = None) -> HubLoadError:
    """One readable line for an exception raised by huggingface_hub (or the HTTP layer under it) while
    fetching `spec`, naming the case and what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        OfflineModeIsEnabled, RemoteEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    endpoint = endpoint or constants.ENDPOINT
    repo, _, revision = spec.partition("@")
    login = "log in with `hf auth login` (or set HF_TOKEN) with an account that can read it"
    if isinstance(e, GatedRepoError):
        return HubLoadError(f"{repo} is a gated repo: accept its conditions on {endpoint}/{repo}, then {login}",
                            "gated")
    if isinstance(e, RepositoryNotFoundError):
        return HubLoadError(f"Hub repo {repo!r} not found at {endpoint} (no local folder of that name either): check "
                            f"the spelling; if the repo is private, {login}", "repo-not-found")
    if isinstance(e, RevisionNotFoundError):
        return HubLoadError(f"{repo} has no revision {revision or 'main'!r}: name an existing branch, tag or commit "
                            f"(see {endpoint}/{repo}/tree/main), or drop '@{revision}' to load main",
                            "revision-not-found")
    if isinstance(e, RemoteEntryNotFoundError):
        response = getattr(e, "response", None)
        name = str(response.url).rsplit("/", 1)[-1] if response is not None else "a file"
        return HubLoadError(f"{spec}: file not found in the repo ({name}); a CycleGAN repo holds {CONFIG} and "
                            f"{WEIGHTS} (a reference .pth converts with `python -m cyclegan.convert`)",
                            "file-not-found")
    if isinstance(e, (OfflineModeIsEnabled, LocalEntryNotFoundError)) or constants.HF_HUB_OFFLINE:
        return HubLoadError(f"offline: {spec} is not in the local Hub cache and HF_HUB_OFFLINE is set; unset "
                            f"HF_HUB_OFFLINE (online) to download it once, or use a local model folder", "offline")
    if isinstance(e, HfHubHTTPError):
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            return HubLoadError(f"not authorised to read {repo} at {endpoint} (HTTP {status}): the token was refused "
                                f"or lacks access; {login}", "not-authorised")
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return HubLoadError(f"the Hub at {endpoint} could not serve {spec}: {first[:300]}; retry later", "hub-error")
    if isinstance(e, _DownloadTimeout):
        return HubLoadError(str(e), "timeout")
    text = f"{type(e).__name__}: {' '.join(str(e).split())}"
    if "timeout" in text.lower() or "timed out" in text.lower():
        return HubLoadError(f"the Hub at {endpoint} did not answer in time for {spec} ({text[:200]}): check your "
                            f"connection and retry", "timeout")
    return HubLoadError(f"cannot reach the Hub at {endpoint} for {spec} ({text[:200]}): check your connection or "
                        f"HF_ENDPOINT; with HF_HUB_OFFLINE=1 only models already downloaded are used", "offline")


class _DownloadTimeout(Exception):
    pass


def _progress_class(deadline: float, limit_s: float, cap: int, what: str,
                    progress: Callable[[int, int | None], None] | None):
    """A tqdm class for hf_hub_download that stops a download past its deadline or its size cap, and reports
    progress (bytes done, bytes total) to `progress`."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Bar(hf_tqdm):
        def update(self, n=1):
            done = (self.n or 0) + (n or 0)
            if done > cap:
                raise ModelRefused(f"{what}: the download passed the {_mb(cap)} limit for model weights; stopped")
            if time.monotonic() > deadline:
                raise _DownloadTimeout(f"{what}: the download took longer than its time limit ({limit_s:g} s); stopped "
                                       f"(retry, or download it with `python -m cyclegan.hub pull` and load the "
                                       f"folder)")
            if progress is not None:
                progress(done, self.total)
            return super().update(n)

    return Bar


def _load_hub(repo: str, revision: str | None, *, max_weight_bytes: int, token, timeout_s: float,
              progress, cache_dir: str | None, max_cache_bytes: int | None) -> CycleGAN:
    from huggingface_hub import HfApi, constants, hf_hub_download

    spec = f"{repo}@{revision}" if revision else repo
    endpoint = constants.ENDPOINT
    if constants.HF_HUB_OFFLINE:  # only the cache: what is there was checked when it was downloaded
        try:
            cfg_path = hf_hub_download(repo, CONFIG, revision=revision, token=token, local_files_only=True,
                                       cache_dir=cache_dir)
            hf_hub_download(repo, WEIGHTS, revision=revision, token=token, local_files_only=True, cache_dir=cache_dir)
        except Exception as e:  # noqa: BLE001 - every client error becomes one line
            raise hub_error(e, spec, endpoint) from None
        check_config(_read_config(Path(cfg_path), spec), spec)
        commit = Path(cfg_path).parent.name
    else:
        try:
            info = HfApi(token=token).model_info(repo, revision=revision, files_metadata=True,
                                                 timeout=METADATA_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001
            raise hub_error(e, spec, endpoint) from None
        sizes = {s.rfilename: s.size for s in (info.siblings or [])}
        if WEIGHTS not in sizes:
            pickles = sorted(n for n in sizes if n.endswith(PICKLE_SUFFIXES))
            raise ModelRefused(f"{spec} holds no {WEIGHTS}" + (f" (only {', '.join(pickles)}: pickle files are never "
                               "loaded, they can run code)" if pickles else "") + "; nothing was downloaded")
        if CONFIG not in sizes:
            raise ModelRefused(f"{spec} holds no {CONFIG}: not a CycleGAN model repo; nothing was downloaded")
        if sizes[WEIGHTS] is None or sizes[WEIGHTS] > max_weight_bytes:
            got = "of unknown size" if sizes[WEIGHTS] is None else _mb(sizes[WEIGHTS])
            raise ModelRefused(f"{spec}: {WEIGHTS} is {got}, over the {_mb(max_weight_bytes)} limit for model "
                               f"weights; nothing was downloaded")
        if (sizes[CONFIG] or 0) > MAX_CONFIG_BYTES:
            raise ModelRefused(f"{spec}: {CONFIG} is {_mb(sizes[CONFIG])}, over the {_mb(MAX_CONFIG_BYTES)} limit "
                               f"for a config; nothing was downloaded")
        commit = info.sha  # everything below comes from the commit whose metadata was checked
        deadline = time.monotonic() + timeout_s
        with _download_lock(endpoint, repo, commit):
            try:
                cfg_path = hf_hub_download(
                    repo, CONFIG, revision=commit, token=token, cache_dir=cache_dir,
                    tqdm_class=_progress_class(deadline, timeout_s, MAX_CONFIG_BYTES, spec, None))
                check_config(_read_config(Path(cfg_path), spec), spec)
                weights = hf_hub_download(repo, WEIGHTS, revision=commit, token=token, cache_dir=cache_dir,
                                          tqdm_class=_progress_class(deadline, timeout_s, max_weight_bytes, spec, progress))
            except ModelLoadError:
                raise
            except Exception as e:  # noqa: BLE001
                raise hub_error(e, spec, endpoint) from None
    with _cache_lock:  # not pruned by another caller while it loads
        try:
            model = CycleGAN.from_pretrained(repo, revision=commit, token=token, local_files_only=True,
                                             cache_dir=cache_dir)
        except (ValueError, OSError, TypeError, RuntimeError) as e:
            raise ModelRefused(f"could not load {spec}: {' '.join(str(e).split())[:400]}") from None
        if cache_dir is not None:
            weights = hf_hub_download(repo, WEIGHTS, revision=commit, local_files_only=True, cache_dir=cache_dir)
            os.utime(weights)  # marks the repo as just used (mtime) for prune_cache
            if max_cache_bytes is not None:
                prune_cache(cache_dir, max_cache_bytes, keep=repo)
    model.source = f"Hub repo {repo} (revision {revision or 'main'}, commit {commit[:12]})"
    return model.eval()


def prune_cache(cache_dir: str | Path, max_cache_bytes: int, keep: str | None = None) -> list[str]:
    """Deletes the least recently used model repos from a huggingface_hub cache folder that `load_model` owns
    (its `cache_dir`) until it holds at most `max_cache_bytes`; never `keep` nor a repo being downloaded.
    Returns the deleted repo ids. Use only on a dedicated folder: every model repo in it is a candidate."""
    from huggingface_hub import scan_cache_dir

    with _cache_lock:
        info = scan_cache_dir(cache_dir)
        busy = {r for (_, r, _), lock in list(_locks.items()) if lock.locked()}
        repos = sorted((r for r in info.repos if r.repo_type == "model"), key=lambda r: r.last_modified)
        total, deleted = sum(r.size_on_disk for r in repos), []
        for r in repos:
            if total <= max_cache_bytes:
                break
            if r.repo_id == keep or r.repo_id in busy:
                continue
            info.delete_revisions(*[rev.commit_hash for rev in r.revisions]).execute()
            total -= r.size_on_disk
            deleted.append(r.repo_id)
        return deleted


def load_model(spec: str, *, max_weight_bytes: int = DEFAULT_MAX_WEIGHT_BYTES, allow: Iterable[str] | None = None,
               token: str | bool | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
               progress: Callable[[int, int | None], None] | None = None, cache_dir: str | Path | None = None,
               max_cache_bytes: int | None = None) -> CycleGAN:
    """The CycleGAN named by `spec` (a local folder, or a Hub repo id `user/name[@revision]`), in eval mode.

    max_weight_bytes: largest model.safetensors accepted (bytes; 1 GiB by default), checked from the Hub's
        metadata before downloading, and again while downloading.
    allow: None (anything), or the specs this deployment offers (local folders compared by resolved path; an
        entry `user/name` allows every revision of that repo, `user/name@rev` only that one).
    token: Hub token (default: huggingface_hub's own, e.g. HF_TOKEN or `hf auth login`).
    timeout_s: time limit for downloading one model (seconds).
    progress: called as progress(bytes_done, bytes_total_or_None) while the weights download.
    cache_dir: a huggingface_hub cache folder of its own for Hub downloads (default: the usual HF cache).
    max_cache_bytes: with cache_dir, the most its model repos may hold; after each Hub load the least recently
        used repos are deleted down to it (`prune_cache`). A public app sets both so its disk stays bounded.

    Raises a ModelLoadError (ValueError) with one line: MissingModelPath, ModelRefused or HubLoadError.
    """
    kind, target, revision = parse_spec(spec)
    if allow is not None and not _allowed(kind, target, revision, allow):
        raise ModelRefused(f"{spec.strip()!r} is not one of the models this deployment offers (its model box is "
                           f"limited to an allow list)", "not-allowed")
    if kind == "local":
        return _load_local(target, max_weight_bytes)
    return _load_hub(target, revision, max_weight_bytes=max_weight_bytes, token=token, timeout_s=timeout_s,
                     progress=progress, cache_dir=None if cache_dir is None else str(cache_dir),
                     max_cache_bytes=max_cache_bytes)
