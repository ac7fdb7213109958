"""Unpaired translation tasks whose right answer is known: photo2sketch (the default model's) and photo2cartoon.

Domain A is real colour photographs that installable packages ship (scikit-image, matplotlib); domain B is
the same kind of photo put through a deterministic, spatially non-trivial transform of our own:
- `sketch`: a coloured-pencil drawing: strokes where a pixel is darker than its neighbourhood (a "colour
  dodge" of the lightly blurred grey image) over a light wash of the blurred photo's colours;
- `cartoon`: edge-preserving median smoothing, a saturation boost, quantised shading (flat bands of
  brightness) and dark edge lines. A harder benchmark: the cartoon stays close to the photo, so the identity
  mapping already scores well, and with three photos per domain the discriminators learn the domains' colours.
Neither is a per-pixel colour mapping: every output pixel depends on its neighbourhood.

Splits are by photo: domain A's training tiles, domain B's training tiles and the test tiles come from three
disjoint sets of photos, so training is truly unpaired and the test photos are never trained on. Every test
image has its ground truth: style(x) for A -> B, and the photo x itself for B -> A.

    python -m cyclegan.task build --out data/photo2sketch      # ROOT/trainA, trainB, testA, testB
    python -m cyclegan.task examples --out examples            # held-out photos and their sketches
    python -m cyclegan.task build --task photo2cartoon --out data/photo2cartoon
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .optional import require

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# -- the photos -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Photo:
    name: str
    package: str     # where the file comes from
    file: str        # its path inside that package
    licence: str
    credit: str


PHOTOS = {p.name: p for p in [
    Photo("astronaut", "scikit-image", "skimage/data/astronaut.png", "public domain (NASA)",
          "Eileen Collins, NASA Great Images database"),
    Photo("motorcycle_left", "scikit-image", "skimage/data/motorcycle_left.png",
          "Middlebury 2014 stereo dataset, as redistributed by scikit-image (BSD-3-Clause package)",
          "N. Nesic, P. Westling, X. Wang, Y. Kitajima, G. Krathwohl, D. Scharstein, Middlebury College"),
    Photo("hubble_deep_field", "scikit-image", "skimage/data/hubble_deep_field.jpg", "public domain (NASA)",
          "NASA / HubbleSite"),
    Photo("grace_hopper", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
          "public domain (US Navy official photograph)", "Commodore Grace M. Hopper, US Navy"),
    Photo("rocket", "scikit-image", "skimage/data/rocket.jpg", "public domain (SpaceX)", "SpaceX"),
    Photo("retina", "scikit-image", "skimage/data/retina.jpg", "CC0 1.0", "Mikael Haggstrom, Wikimedia Commons"),
    Photo("chelsea", "scikit-image", "skimage/data/chelsea.png", "CC0", "Stefan van der Walt"),
    Photo("coffee", "scikit-image", "skimage/data/coffee.png", "CC0", "Rachel Michetti"),
]}

# Disjoint by photo. The two motorcycle stereo views show one scene, so only the left one is used. The Hubble
# deep field is a speckled star field; among the photos it looked like the source of F's speckles (moving it to
# the sketches raised both directions' SSIM in short runs).
SPLITS = {
    "trainA": ("astronaut", "motorcycle_left", "rocket"),
    "trainB": ("grace_hopper", "hubble_deep_field", "retina"),
    "test": ("chelsea", "coffee"),
}


def load_photo(name: str) -> np.ndarray:
    """The photo as HxWx3 uint8, read from the installed package (no network)."""
    photo = PHOTOS[name]
    if photo.package == "matplotlib":
        import matplotlib
        path = Path(matplotlib.get_data_path()) / "sample_data" / Path(photo.file).name
    else:
        skimage = require("skimage", "benchmark", "The photo2sketch task's photos")
        path = Path(skimage.__file__).parent / "data" / Path(photo.file).name
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


# -- the style ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CartoonStyle:
    median_size: int = 5      # edge-preserving smoothing: a median filter per channel...
    median_passes: int = 2    # ... applied this many times
    saturation: float = 1.6   # chroma gain around each pixel's grey level
    levels: int = 6           # brightness bands of the quantised shading
    edge_sigma: float = 1.0   # Gaussian blur of the photo's grey image before the edge detector
    edge_threshold: float = 0.07  # Sobel gradient magnitude (per unit of distance, intensities in [0, 1])
    line_darkness: float = 0.2    # edge pixels keep this fraction of their colour

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return cartoon(img, self)


def cartoon(img: np.ndarray, style: CartoonStyle = CartoonStyle()) -> np.ndarray:
    """HxWx3 uint8 photo -> HxWx3 uint8 cartoon. Deterministic; borders are handled by reflection."""
    ndimage = require("scipy.ndimage", "benchmark", "The photo2sketch task")

    x = np.asarray(img, dtype=np.float32) / 255.0
    smooth = x
    for _ in range(style.median_passes):
        smooth = np.stack([ndimage.median_filter(smooth[..., c], size=style.median_size, mode="reflect")
                           for c in range(3)], -1)
    grey = (smooth @ LUMA)[..., None]
    vivid = np.clip(grey + style.saturation * (smooth - grey), 0.0, 1.0)
    lum = vivid @ LUMA
    banded = (np.floor(lum * style.levels).clip(0, style.levels - 1) + 0.5) / style.levels
    out = np.clip(vivid * (banded / np.maximum(lum, 1e-3))[..., None], 0.0, 1.0)
    soft = ndimage.gaussian_filter(x @ LUMA, style.edge_sigma, mode="reflect")
    magnitude = np.hypot(ndimage.sobel(soft, 1, mode="reflect"), ndimage.sobel(soft, 0, mode="reflect")) / 8.0
    out[magnitude > style.edge_threshold] *= style.line_darkness
    return (out * 255.0 + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class SketchStyle:
    pre_sigma: float = 1.0    # Gaussian blur of the grey image first, so that sensor noise draws no strokes
    line_sigma: float = 2.5   # the neighbourhood each pixel is compared with (Gaussian sigma, pixels)
    line_gamma: float = 3.0   # darkens the strokes: ratio ** gamma
    wash_sigma: float = 3.0   # blur of the photo that gives the colour wash
    wash: float = 0.6         # strength of the wash: each channel c becomes 1 - wash * (1 - c), lighter

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return sketch(img, self)


def sketch(img: np.ndarray, style: SketchStyle = SketchStyle()) -> np.ndarray:
    """HxWx3 uint8 photo -> HxWx3 uint8 coloured-pencil sketch. Deterministic; borders are handled by reflection.

    Strokes: each pixel's (lightly blurred) grey level divided by the mean of its neighbourhood, a "colour
    dodge": flat regions turn to paper and a pixel darker than its surroundings becomes a dark stroke.
    Wash: the blurred photo, lightened towards white, colours the paper under the strokes.
    """
    ndimage = require("scipy.ndimage", "benchmark", "The photo2sketch task")

    x = np.asarray(img, dtype=np.float32) / 255.0
    soft = ndimage.gaussian_filter(x @ LUMA, style.pre_sigma, mode="reflect")
    local = ndimage.gaussian_filter(soft, style.line_sigma, mode="reflect")
    strokes = np.clip(soft / np.maximum(local, 1e-3), 0.0, 1.0) ** style.line_gamma
    blurred = ndimage.gaussian_filter(x, (style.wash_sigma, style.wash_sigma, 0), mode="reflect")  # per channel
    out = strokes[..., None] * (1.0 - style.wash * (1.0 - blurred))
    return (out * 255.0 + 0.5).astype(np.uint8)


# -- tiles --------------------------------------------------------------------------------------------
def resize_short(img: np.ndarray, short: int) -> np.ndarray:
    """Resized (Lanczos) so that its shorter side is `short` pixels."""
    h, w = img.shape[:2]
    scale = short / min(h, w)
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    return np.asarray(Image.fromarray(img).resize(size, Image.LANCZOS))


def tile_grid(h: int, w: int, size: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of size x size tiles every `stride` pixels, the last row/column flush with the edge."""
    def starts(n: int) -> list[int]:
        s = list(range(0, n - size + 1, stride))
        if s[-1] != n - size:
            s.append(n - size)
        return s
    return [(y, x) for y in starts(h) for x in starts(w)]


@dataclass(frozen=True)
class Task:
    name: str
    name_A: str
    name_B: str
    train_scales: tuple[int, ...] = (224, 288, 384)  # shorter side of the photo before cutting train tiles
    train_tile: int = 144                            # train tiles (the recipe trains on random 64x64 crops)
    train_stride: int = 40
    test_scale: int = 288
    test_tile: int = 128
    test_stride: int = 80
    example_scale: int = 288                         # the gallery's photos: whole photos at this scale
    style: CartoonStyle | SketchStyle = SketchStyle()

    def transform(self, img: np.ndarray) -> np.ndarray:
        return self.style(img)

    def train_tiles(self, split: str):
        """(file name, photo name, HxWx3 uint8) for trainA (photo tiles) or trainB (styled photo tiles)."""
        for photo in SPLITS[split]:
            img = load_photo(photo)
            for short in self.train_scales:
                scaled = resize_short(img, short)
                for y, x in tile_grid(*scaled.shape[:2], self.train_tile, self.train_stride):
                    tile = np.ascontiguousarray(scaled[y:y + self.train_tile, x:x + self.train_tile])
                    if split == "trainB":
                        tile = self.transform(tile)
                    yield f"{photo}_s{short}_y{y:03d}_x{x:03d}.png", photo, tile

    def test_pairs(self):
        """(file name, photo name, photo tile, styled tile): the benchmark, with its ground truth."""
        for photo in SPLITS["test"]:
            scaled = resize_short(load_photo(photo), self.test_scale)
            for y, x in tile_grid(*scaled.shape[:2], self.test_tile, self.test_stride):
                tile = np.ascontiguousarray(scaled[y:y + self.test_tile, x:x + self.test_tile])
                yield f"{photo}_y{y:03d}_x{x:03d}.png", photo, tile, self.transform(tile)

    def build(self, out: str | Path) -> dict:
        """Writes OUT/trainA, trainB, testA, testB (PNG) and OUT/manifest.json (the photo of every file)."""
        out = Path(out)
        manifest: dict[str, dict[str, str]] = {}
        for split in ("trainA", "trainB"):
            folder = out / split
            folder.mkdir(parents=True, exist_ok=True)
            manifest[split] = {}
            for fname, photo, tile in self.train_tiles(split):
                Image.fromarray(tile).save(folder / fname)
                manifest[split][fname] = photo
        for split in ("testA", "testB"):
            (out / split).mkdir(parents=True, exist_ok=True)
            manifest[split] = {}
        for fname, photo, tile, styled in self.test_pairs():
            Image.fromarray(tile).save(out / "testA" / fname)
            Image.fromarray(styled).save(out / "testB" / fname)
            manifest["testA"][fname] = manifest["testB"][fname] = photo
        info = {"task": self.name, "name_A": self.name_A, "name_B": self.name_B, "splits": dict(SPLITS),
                "files": manifest}
        (out / "manifest.json").write_text(json.dumps(info, indent=1))
        return info

    def write_examples(self, out: str | Path) -> list[Path]:
        """Whole held-out photos and their styled versions: OUT/<name_A>/PHOTO.png and OUT/<name_B>/PHOTO.png."""
        out = Path(out)
        written = []
        for photo in SPLITS["test"]:
            img = resize_short(load_photo(photo), self.example_scale)
            for domain, arr in ((self.name_A, img), (self.name_B, self.transform(img))):
                (out / domain).mkdir(parents=True, exist_ok=True)
                path = out / domain / f"{photo}.png"
                Image.fromarray(arr).save(path)
                written.append(path)
        return written


DEFAULT_TASK = "photo2sketch"
TASKS = {"photo2sketch": Task("photo2sketch", "photo", "sketch", style=SketchStyle()),
         "photo2cartoon": Task("photo2cartoon", "photo", "cartoon", style=CartoonStyle())}


def task_for(name_A: str, name_B: str) -> Task | None:
    """The task whose domains are named name_A and name_B (as a model's config names them), if any."""
    return next((t for t in TASKS.values() if (t.name_A, t.name_B) == (name_A, name_B)), None)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Build a task's data set or the gallery examples.")
    p.add_argument("command", choices=["build", "examples"])
    p.add_argument("--task", default=DEFAULT_TASK, choices=sorted(TASKS))
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv)
    task = get_task(args.task)
    if args.command == "build":
        info = task.build(args.out)
        counts = ", ".join(f"{k} {len(v)}" for k, v in info["files"].items())
        print(f"wrote {args.out}: {counts}")
    else:
        for path in task.write_examples(args.out):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
