"""The reference implementation's released generators as ready-to-use CycleGANs, for the app's model picker.

    from cyclegan import released
    for pair in released.PAIRS: print(pair.key, pair.title, pair.direction_label("AtoB"))
    folder = released.get("horse2zebra", progress=lambda fraction, message: print(fraction, message))
    # progress is called as progress(fraction, message): a gradio.Progress() can be passed as it is
    model = released.load("horse2zebra")                 # the same, loaded strictly

A released pair is two single-direction generators of junyanz/pytorch-CycleGAN-and-pix2pix (one `.pth` per
direction, http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth, or the mirror named by
$CYCLEGAN_PRETRAINED_URL). On first use both files are downloaded (time limit, size limit checked against the
announced Content-Length and while reading, the whole file must arrive), read with
`torch.load(weights_only=True)`, normalised strictly (cyclegan.convert) and saved as one safetensors model folder
in the on-disk cache; the next call returns that folder at once. Callers asking for the same pair at once share
one download (a lock per cache folder and pair); the cache keeps `max_cached` pairs, the least recently used
goes first. Any failure (offline, HTTP error, timeout, a file too large or not a released generator) is one
`ReleasedModelError` line, and the cache is left as it was.
"""
from __future__ import annotations

import http.client
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .convert import URL_PATTERN, ConversionError, convert_pair, save_converted
from .loading import human_bytes as _mb

# The released generators have the paper's architecture (ngf 64, 9 blocks): 11,378,179 float32 parameters,
# about 45.5 MB per file (46.0 MB with the 2018 files' running statistics). Anything far larger is not one.
MAX_FILE_BYTES = 64 * 10**6
DEFAULT_TIMEOUT_S = 600.0    # both files of one pair, on a slow line (about 150 kB/s)
SOCKET_TIMEOUT_S = 30.0      # no byte for this long: the download has stalled
DEFAULT_MAX_CACHED = 4       # converted pairs kept on disk (about 91 MB each)
DEFAULT_CACHE = Path.home() / ".cache" / "cyclegan" / "released"
DONE = "model.safetensors"   # a cache entry is complete when this exists (it is moved in last, with its folder)

Progress = Callable[[float, str], None]   # progress(fraction in [0, 1], message)


class ReleasedModelError(ValueError):
    """A released pair that could not be fetched or converted; the message is one line and says what to do."""


@dataclass(frozen=True)
class ReleasedPair:
    """One picker entry: domain A, domain B, and the released file for each direction."""

    key: str        # what get() takes, e.g. "horse2zebra"
    title: str      # what a picker shows, e.g. "horse <-> zebra"
    name_A: str
    name_B: str
    a2b: str        # released file name (without .pth) of G_AB
    b2a: str        # ... of G_BA
    caption: str    # one sentence on what it was trained on

    def direction_label(self, direction: str) -> str:
        """"AtoB" -> "horse -> zebra", "BtoA" -> "zebra -> horse"."""
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        a, b = (self.name_A, self.name_B) if direction == "AtoB" else (self.name_B, self.name_A)
        return f"{a} -> {b}"

    @property
    def files(self) -> tuple[str, str]:
        return self.a2b, self.b2a


_REF = "the reference implementation's released generators"
PAIRS: tuple[ReleasedPair, ...] = (
    ReleasedPair("horse2zebra", "horse <-> zebra", "horse", "zebra", "horse2zebra", "zebra2horse",
                 f"{_REF} horse2zebra + zebra2horse, trained together on ImageNet photos of horses and zebras."),
    ReleasedPair("apple2orange", "apple <-> orange", "apple", "orange", "apple2orange", "orange2apple",
                 f"{_REF} apple2orange + orange2apple, trained together on ImageNet photos of apples and oranges."),
    ReleasedPair("summer2winter_yosemite", "summer <-> winter (Yosemite)", "summer", "winter",
                 "summer2winter_yosemite", "winter2summer_yosemite",
                 f"{_REF} summer2winter_yosemite + winter2summer_yosemite, trained together on Flickr photos of "
                 "Yosemite."),
    ReleasedPair("monet2photo", "Monet <-> photo", "Monet", "photo", "monet2photo", "style_monet",
                 f"{_REF} monet2photo (painting -> photo) + style_monet (photo -> painting in Monet's style), from "
                 "the Monet paintings and Flickr landscape photos."),
    ReleasedPair("sat2map", "satellite <-> map", "satellite", "map", "sat2map", "map2sat",
                 f"{_REF} sat2map + map2sat, trained together on Google Maps satellite and map tiles."),
    ReleasedPair("cityscapes", "Cityscapes photo <-> labels", "photo", "labels", "cityscapes_photo2label",
                 "cityscapes_label2photo",
                 f"{_REF} cityscapes_photo2label + cityscapes_label2photo, trained together on Cityscapes street "
                 "photos and their semantic label maps."),
    ReleasedPair("facades", "facades photo <-> labels", "photo", "labels", "facades_photo2label",
                 "facades_label2photo",
                 f"{_REF} facades_photo2label + facades_label2photo, trained together on CMP building facades and "
                 "their label maps."),
)


def pair(name: str) -> ReleasedPair:
    """The pair named by its key ("horse2zebra"), its title ("horse <-> zebra") or either file name."""
    for p in PAIRS:
        if name in (p.key, p.title, p.a2b, p.b2a):
            return p
    raise ReleasedModelError(f"{name!r} is not a released pair; choose one of: "
                             + ", ".join(f"{p.key} ({p.title})" for p in PAIRS))


def pairs() -> list[tuple[str, str]]:
    """(key, title) for each pair, in picker order: e.g. ("horse2zebra", "horse <-> zebra")."""
    return [(p.key, p.title) for p in PAIRS]


def base_url() -> str:
    """Where the .pth files come from: $CYCLEGAN_PRETRAINED_URL (a mirror with the same layout) or the
    reference implementation's server."""
    env = os.environ.get("CYCLEGAN_PRETRAINED_URL", "").strip()
    return env.rstrip("/") if env else URL_PATTERN.rsplit("/", 1)[0]


# -- downloading one file ---------------------------------------------------------------------------------------
def fetch(name: str, folder: str | Path, *, url_base: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
          max_bytes: int = MAX_FILE_BYTES, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Downloads NAME.pth into FOLDER (through FOLDER/NAME.pth.part, renamed when complete) and returns its path.

    Refused with ReleasedModelError: an announced Content-Length over `max_bytes` (before reading), more bytes
    than `max_bytes` or than announced, fewer bytes than announced (a cut connection), no byte for
    SOCKET_TIMEOUT_S, longer than `timeout_s` in all, an HTTP error or an unreachable server.
    progress(bytes_done, bytes_total_or_None) is called as chunks arrive."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    url = f"{url_base or base_url()}/{name}.pth"
    path, part = folder / f"{name}.pth", folder / f"{name}.pth.part"
    retry = ("set CYCLEGAN_PRETRAINED_URL to a mirror, or download both files yourself and convert them with "
             "`python -m cyclegan.convert --a2b ... --b2a ...`")
    deadline = time.monotonic() + timeout_s
    try:
        with urllib.request.urlopen(url, timeout=min(SOCKET_TIMEOUT_S, timeout_s)) as r, open(part, "wb") as f:
            length = r.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > max_bytes:
                raise ReleasedModelError(f"{url} announces {_mb(total)}, over the {_mb(max_bytes)} limit for a "
                                         f"released generator (about 46 MB); refused without downloading")
            done = 0
            while chunk := r.read(1 << 20):
                done += len(chunk)
                if done > max_bytes or (total is not None and done > total):
                    raise ReleasedModelError(f"{url} sent more than {_mb(total or max_bytes)}; stopped (over the "
                                             f"{_mb(max_bytes)} limit for a released generator)")
                if time.monotonic() > deadline:
                    raise ReleasedModelError(f"downloading {url} took longer than {timeout_s:.0f} s; stopped. "
                                             f"Retry on a faster connection, or {retry}")
                f.write(chunk)
                if progress is not None:
                    progress(done, total)
        if total is not None and done != total:
            raise ReleasedModelError(f"{url}: the connection ended after {done} of {total} bytes; retry")
    except ReleasedModelError:
        part.unlink(missing_ok=True)
        raise
    except urllib.error.HTTPError as e:
        part.unlink(missing_ok=True)
        raise ReleasedModelError(f"cannot download {url}: HTTP {e.code} {e.reason}; {retry}") from None
    except http.client.IncompleteRead as e:
        part.unlink(missing_ok=True)
        raise ReleasedModelError(f"{url}: the connection ended after {len(e.partial)} bytes of the announced "
                                 f"{_mb(len(e.partial) + (e.expected or 0))}; retry") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # offline, refused, DNS, timeouts, a bad URL
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise ReleasedModelError(f"cannot download {url} ({reason}): offline or the server is unreachable; "
                                 f"{retry}") from None
    part.replace(path)
    return path


# -- the cache --------------------------------------------------------------------------------------------------
_locks: dict[tuple[str, str], threading.Lock] = {}
_guard = threading.Lock()
_cache_lock = threading.RLock()   # held while a folder is evicted or loaded, so one is never removed mid-load


def _lock_for(cache: Path, key: str) -> threading.Lock:
    with _guard:
        return _locks.setdefault((str(cache.resolve()), key), threading.Lock())


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: the argument, else $CYCLEGAN_RELEASED_CACHE, else ~/.cache/cyclegan/released."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("CYCLEGAN_RELEASED_CACHE", "").strip()
    return Path(env) if env else DEFAULT_CACHE


def cached(name: str, cache_dir: str | Path | None = None) -> Path | None:
    """The converted model folder of a pair if it is in the cache (no download), else None."""
    folder = resolve_cache_dir(cache_dir) / pair(name).key
    return folder if (folder / DONE).is_file() else None


def _touch(folder: Path) -> None:
    (folder / ".last_used").write_text(f"{time.time():.6f}\n")


def _last_used(folder: Path) -> float:
    try:
        return float((folder / ".last_used").read_text())
    except (OSError, ValueError):
        return 0.0


def _evict(cache: Path, keep: str, max_cached: int) -> list[str]:
    """Removes the least recently used converted pairs beyond `max_cached` (never `keep`); returns their keys."""
    with _cache_lock:
        entries = [d for d in cache.iterdir() if d.is_dir() and not d.name.startswith(".") and (d / DONE).is_file()]
        entries.sort(key=_last_used, reverse=True)
        removed = []
        for d in [e for e in entries if e.name != keep][max(0, max_cached - 1):]:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
        return removed


def get(name: str, cache_dir: str | Path | None = None, progress: Progress | None = None, *,
        timeout_s: float = DEFAULT_TIMEOUT_S, max_file_bytes: int = MAX_FILE_BYTES,
        max_cached: int = DEFAULT_MAX_CACHED) -> Path:
    """The converted model folder (config.json, model.safetensors, conversion.json, README.md) of a released pair,
    downloading and converting it on first use.

    name: a pair's key, title or file name (see PAIRS). cache_dir: the cache folder (default
        `resolve_cache_dir()`: $CYCLEGAN_RELEASED_CACHE or ~/.cache/cyclegan/released).
    progress(fraction in [0, 1], message): called while waiting, downloading (0 to 0.9) and converting.
    timeout_s: time limit for both downloads together (seconds). max_file_bytes: largest .pth accepted.
    max_cached: converted pairs kept in the cache (least recently used removed first; at least 1).
    Raises ReleasedModelError (a ValueError) with one line; the cache is then left as it was."""
    p = pair(name)
    cache = resolve_cache_dir(cache_dir)
    say = progress or (lambda fraction, message: None)
    final = cache / p.key
    if (final / DONE).is_file():
        _touch(final)
        return final
    cache.mkdir(parents=True, exist_ok=True)
    lock = _lock_for(cache, p.key)
    if not lock.acquire(blocking=False):
        say(0.0, f"{p.title}: waiting for the download already under way")
        lock.acquire()
    try:
        if (final / DONE).is_file():  # another caller finished it while we waited
            _touch(final)
            say(1.0, f"{p.title}: ready")
            return final
        deadline = time.monotonic() + timeout_s
        with tempfile.TemporaryDirectory(prefix=f".partial-{p.key}-", dir=cache) as tmp:
            tmp = Path(tmp)
            files = []
            for i, fname in enumerate(p.files):
                def report(done, total, i=i, fname=fname):
                    frac = done / total if total else 0.0
                    size = f"{_mb(done)} of {_mb(total)}" if total else _mb(done)
                    say(0.45 * (i + frac), f"{p.title}: downloading {fname}.pth ({size})")
                say(0.45 * i, f"{p.title}: downloading {fname}.pth")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ReleasedModelError(f"{p.title}: the downloads took longer than {timeout_s:.0f} s; stopped")
                files.append(fetch(fname, tmp / "pth", timeout_s=left, max_bytes=max_file_bytes, progress=report))
            say(0.9, f"{p.title}: checking and converting")
            try:
                model, record = convert_pair(files[0], files[1], p.name_A, p.name_B)
            except ConversionError as e:
                raise ReleasedModelError(f"{p.title}: the downloaded file is not a released generator: "
                                         f"{' '.join(str(e).split())[:400]}") from None
            record["released_pair"] = {"key": p.key, "title": p.title, "url_base": base_url()}
            out = tmp / p.key
            save_converted(model, record, out, repo_id=str(final))
            shutil.rmtree(tmp / "pth", ignore_errors=True)
            _touch(out)
            with _cache_lock:
                if final.exists():  # a leftover without weights (a crash mid-move): replace it
                    shutil.rmtree(final)
                os.replace(out, final)
        _evict(cache, p.key, max_cached)
        say(1.0, f"{p.title}: ready")
        return final
    finally:
        lock.release()


def load(name: str, cache_dir: str | Path | None = None, progress: Progress | None = None, **kwargs):
    """`get` then a strict load of the folder (cyclegan.loading.load_model): a CycleGAN in eval mode whose
    domain names are the pair's, e.g. model.direction_label("AtoB") == "horse -> zebra"."""
    from .loading import load_model

    for _ in range(3):
        folder = get(name, cache_dir, progress, **kwargs)
        with _cache_lock:  # not evicted by another caller while it loads
            if (folder / DONE).is_file():
                model = load_model(str(folder))
                break
    else:
        raise ReleasedModelError(f"{name}: the cache is too small for the pairs being loaded at once; raise "
                                 f"max_cached")
    p = pair(name)
    model.source = f"released {p.a2b}.pth + {p.b2a}.pth (reference implementation), converted in {folder}"
    return model
