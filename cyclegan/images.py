"""Reading any image people have into RGB, converting between PIL images and [-1, 1] tensors, and writing
PNGs that readers may be fetching while they are written. (Named `images`, not `imageio`, so that it does
not shadow the well-known imageio package.)"""
from __future__ import annotations

import functools
import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps

try:  # HEIC/HEIF, the default format of iPhone cameras since 2017 (AVIF and WebP are Pillow's own)
    import pillow_heif
    pillow_heif.register_heif_opener()
    HEIF_READER = True
except ImportError:  # a runtime requirement (requirements.txt); without it, HEIC files get a one-line message
    HEIF_READER = False

HEIF_EXTENSIONS = {".heic", ".heif", ".hif"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".avif", ".tif", ".tiff", ".ppm", ".pgm",
                    ".pnm"} | HEIF_EXTENSIONS
DEFAULT_MAX_PIXELS = 50_000_000  # a decompression bomb larger than this is refused before decoding


class ImageError(ValueError):
    """An input that is not a usable image; the message says what is wrong, for people."""


class ImageTooLarge(ImageError):
    """An image with more pixels than the caller's limit (or PIL's decompression-bomb limit)."""


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_ICC_MODES = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "L": "RGB"}   # image mode -> mode after conversion


@functools.lru_cache(maxsize=16)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """A LittleCMS transform from the embedded profile to sRGB (relative colorimetric, as browsers render);
    None when the profile is sRGB already."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    if (ImageCms.getProfileDescription(profile) or "").strip().lower().startswith("srgb"):
        return None
    return ImageCms.buildTransform(profile, _SRGB, mode, _ICC_MODES[mode],
                                   renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)


def to_srgb(img: Image.Image) -> Image.Image:
    """The image's colours in sRGB: an embedded ICC profile (Display P3 from phones, Adobe RGB from cameras, a
    CMYK or grey profile) is converted with PIL.ImageCms (LittleCMS), so colours look as they do in a browser
    or photo viewer; images without a profile are taken as sRGB, as browsers do. A profile that LittleCMS
    cannot read, or that does not fit the image's mode, is ignored in the same way."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in _ICC_MODES:
        return img
    try:
        transform = _srgb_transform(bytes(icc), img.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return img
    if transform is None:
        return img
    out = ImageCms.applyTransform(img, transform)
    out.info.pop("icc_profile", None)
    return out


def to_rgb(img: Image.Image) -> Image.Image:
    """sRGB RGB with EXIF orientation applied: first frame of animations, an embedded ICC profile converted to
    sRGB, alpha composited on white, 16-bit and float greyscale scaled to 8 bits, CMYK / palette / greyscale
    converted."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    icc = img.info.get("icc_profile")
    img = ImageOps.exif_transpose(img)
    if icc:
        img.info["icc_profile"] = icc
        img = to_srgb(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def load_rgb(source: str | Path | bytes | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open a path, bytes or PIL image as an 8-bit sRGB RGB image (see `to_rgb`): every format Pillow reads
    (JPEG, PNG, WebP, AVIF, TIFF, GIF, ...) and HEIC/HEIF through pillow-heif. The one loader of the app,
    translate and the training data. Raises ImageError with a readable reason (no such file, empty, not an
    image, more than `max_pixels` pixels, corrupt); MemoryError passes through."""
    name = "the image" if isinstance(source, (bytes, Image.Image)) else str(source)
    if isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, bytes):
            if not source:
                raise ImageError("the file is empty")
            fp = io.BytesIO(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise ImageError(f"{name}: no such file")
            if path.stat().st_size == 0:
                raise ImageError(f"{name}: the file is empty")
            fp = path
        try:
            img = Image.open(fp)
        except Image.DecompressionBombError as e:
            raise ImageTooLarge(f"{name}: too large to decode safely ({e})") from None
        except Exception as e:  # PIL raises UnidentifiedImageError, OSError, SyntaxError...
            if not HEIF_READER and isinstance(source, (str, Path)) and Path(source).suffix.lower() in HEIF_EXTENSIONS:
                raise ImageError(f"{name}: reading HEIC/HEIF photos needs pillow-heif: pip install pillow-heif"
                                 ) from None
            raise ImageError(f"{name}: not an image file PIL can read ({type(e).__name__})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageTooLarge(f"{name}: {w}x{h} pixels is more than the limit of {max_pixels:,} pixels")
    if w < 1 or h < 1:
        raise ImageError(f"{name}: the image has no pixels")
    try:
        img.load()
        return to_rgb(img)
    except MemoryError:
        raise  # not the file's fault: the caller reports it as out of memory
    except Exception as e:
        raise ImageError(f"{name}: the image data is corrupt or truncated ({e})") from None


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder` (or below it), sorted by path."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """HWC uint8 RGB -> 1x3xHxW float in [-1, 1]."""
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    return (arr.permute(2, 0, 1).float().div(127.5).sub(1.0)).unsqueeze(0)


def tensor_to_uint8(t: torch.Tensor) -> np.ndarray:
    """3xHxW (or 1x3xHxW) float in [-1, 1] -> HxWx3 uint8, rounded (not truncated)."""
    if t.dim() == 4:
        t = t[0]
    t = t.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round()
    return t.to(torch.uint8).permute(1, 2, 0).numpy()


def png_bytes(image: np.ndarray) -> bytes:
    """HxWx3 (or HxW) uint8 -> the bytes of a PNG file."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="png")
    return buffer.getvalue()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()   # read once: os.umask can only be read by setting it, which is not thread-safe


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` under a temporary name in the same folder, then renames it into place, so a reader
    never sees a half-written file and an interrupted write leaves no partial file. The file gets the usual
    permissions (0666 less the umask), not mkstemp's private 0600. Creates missing parent folders; raises OSError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path


def write_png_once(image: np.ndarray, folder: str | Path, name: str) -> Path:
    """Writes `image` (HxWx3 or HxW uint8) as folder/<sha256 of the PNG bytes>/<name>.png and returns the path.

    The same picture under the same name is written only once (asking again refreshes the file's time, for
    whoever prunes the folder by age), and a file appears whole or not at all (`write_atomic`)."""
    data = png_bytes(image)
    path = Path(folder) / hashlib.sha256(data).hexdigest() / f"{name}.png"
    if path.exists():
        os.utime(path)
        return path
    return write_atomic(path, data)
