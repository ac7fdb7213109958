"""The photo2sketch task (the default model's) and photo2cartoon: unpaired translation whose right answer is known.

Domain A is real colour photographs that installable packages ship: scikit-image, matplotlib and scikit-learn
(pip), and Debian's wallpaper packages (lomiri-wallpapers-16.04/-20.04, mate-backgrounds,
plasma-workspace-wallpapers: photographs only). Each photo's source and licence is in PHOTOS. Domain B is the
same kind of photo put through a deterministic, spatially non-trivial transform of our own:
- `sketch`: a coloured-pencil drawing: strokes where a pixel is darker than its neighbourhood (a "colour
  dodge" of the lightly blurred grey image) over a light wash of the blurred photo's colours;
- `cartoon`: edge-preserving median smoothing, a saturation boost, quantised shading (flat bands of
  brightness) and dark edge lines. A harder benchmark: the cartoon stays close to the photo, so the identity
  mapping already scores well.
Neither is a per-pixel colour mapping: every output pixel depends on its neighbourhood.

Splits are by photo (SPLITS): domain A's training tiles, domain B's training tiles, the test tiles and the
held-out ordinary photos (a portrait, an animal, a building, a landscape, food, an indoor scene, a low-light
photo) come from disjoint sets of photos, so training is truly unpaired and no training run sees the test
photos. Every test image has its ground truth: style(x) for A -> B, and the photo x itself for B -> A.
Needs the `benchmark` extra (scikit-image, scipy) and, for the full photo set, scikit-learn and the Debian
packages: a missing one is named in a one-line error (`scripts/photo2sketch.sh install` installs them all).

    python -m cyclegan.photo2sketch check                           # are all photos installed?
    python -m cyclegan.photo2sketch build --out data/photo2sketch   # ROOT/trainA, trainB, testA, testB
    python -m cyclegan.photo2sketch examples --out examples         # the held-out photos and their true sketches
    python -m cyclegan.photo2sketch strip --out models/photo2sketch/training_examples
    python -m cyclegan.photo2sketch build --task photo2cartoon --out data/photo2cartoon
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
    package: str     # where the file comes from: a Python package, or "debian:<package>"
    file: str        # its path inside that Python package, or its absolute path for a Debian package
    licence: str
    credit: str
    kind: str = ""   # what it shows (the held-out photos' categories)


_SKIMAGE = "scikit-image"
_L16 = "debian:lomiri-wallpapers-16.04"
_L20 = "debian:lomiri-wallpapers-20.04"
_MATE = "debian:mate-backgrounds"
_PLASMA = "debian:plasma-workspace-wallpapers"
_MATE_LICENCE = "GPL-2+ (Debian package mate-backgrounds, /usr/share/doc/mate-backgrounds/copyright)"
_LOMIRI_DOC = "Debian package {}, /usr/share/doc/{}/copyright"
_SKLEARN_LICENCE = ("CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/), as redistributed by scikit-learn "
                    "(sklearn/datasets/images/README.txt)")


def _lomiri(name: str, file: str, licence: str, credit: str, kind: str = "", release: str = "16.04") -> Photo:
    pkg = f"lomiri-wallpapers-{release}"
    return Photo(name, f"debian:{pkg}", f"/usr/share/backgrounds/{file}",
                 f"{licence} ({_LOMIRI_DOC.format(pkg, pkg)})", credit, kind)


def _plasma(name: str, credit: str, kind: str = "") -> Photo:
    return Photo(name, _PLASMA, f"/usr/share/wallpapers/{name}/contents/images/2560x1600.jpg",
                 "LGPL-3 (the wallpaper's metadata.json; package copyright GPL-2+, "
                 "/usr/share/doc/plasma-workspace-wallpapers/copyright)", f"{credit}, KDE Plasma wallpaper", kind)


def _mate(name: str, credit: str) -> Photo:
    return Photo(name, _MATE, f"/usr/share/backgrounds/mate/nature/{name}.jpg", _MATE_LICENCE, credit)


PHOTOS = {p.name: p for p in [
    # Python packages (a plain `pip install "cyclegan[benchmark]"` has scikit-image and matplotlib).
    Photo("astronaut", _SKIMAGE, "skimage/data/astronaut.png", "public domain (NASA)",
          "Eileen Collins, NASA Great Images database"),
    Photo("motorcycle_left", _SKIMAGE, "skimage/data/motorcycle_left.png",
          "Middlebury 2014 stereo dataset, as redistributed by scikit-image (BSD-3-Clause package)",
          "N. Nesic, P. Westling, X. Wang, Y. Kitajima, G. Krathwohl, D. Scharstein, Middlebury College"),
    Photo("hubble_deep_field", _SKIMAGE, "skimage/data/hubble_deep_field.jpg", "public domain (NASA)",
          "NASA / HubbleSite"),
    Photo("grace_hopper", "matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
          "public domain (US Navy official photograph)", "Commodore Grace M. Hopper, US Navy", "portrait"),
    Photo("rocket", _SKIMAGE, "skimage/data/rocket.jpg", "public domain (SpaceX)", "SpaceX"),
    Photo("retina", _SKIMAGE, "skimage/data/retina.jpg", "CC0 1.0", "Mikael Haggstrom, Wikimedia Commons"),
    Photo("chelsea", _SKIMAGE, "skimage/data/chelsea.png", "CC0", "Stefan van der Walt", "animal"),
    Photo("coffee", _SKIMAGE, "skimage/data/coffee.png", "CC0", "Rachel Michetti", "food"),
    Photo("china", "scikit-learn", "sklearn/datasets/images/china.jpg", _SKLEARN_LICENCE,
          "danielbuechele (Flickr), the Tower of Buddhist Incense, Summer Palace, Beijing", "building"),
    Photo("flower", "scikit-learn", "sklearn/datasets/images/flower.jpg", _SKLEARN_LICENCE, "vultilion (Flickr)"),
    # Debian packages (apt-get install; see DEBIAN_PACKAGES).
    _lomiri("picosdeeuropa", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC BY 4.0", "Aitzol Berasategi",
            "landscape"),
    _lomiri("wine", "Wine_by_Jakkub_Mede.jpg", "CC BY 4.0", "Jakub Mede", "indoor scene"),
    _plasma("DarkestHour", "Risto Saukonpää (a lake at dusk)", "low light"),
    _lomiri("aitzgorri", "aitzgorri_by_Aitzol_Berasategi.jpg", "CC BY 4.0", "Aitzol Berasategi"),
    _lomiri("bridge", "Bridge_by_Sander_Klootwijk.jpg", "CC BY-SA 4.0", "Sander Klootwijk"),
    _lomiri("dragonfly", "Dragonfly_by_Bolly.jpg", "CC BY-SA 4.0", "Bolly"),
    _lomiri("free", "free_by_Peter_Nerlich.jpg", "CC BY-SA 4.0", "Peter Nerlich"),
    _lomiri("friends", "friends_by_Aitzol_Berasategi.jpg", "CC BY 4.0", "Aitzol Berasategi"),
    _lomiri("greentock", "greentock_by_Peter_Nerlich.jpg", "CC BY-SA 4.0", "Peter Nerlich"),
    _lomiri("life", "life_by_Aitzol_Berasategi.jpg", "CC BY 4.0", "Aitzol Berasategi"),
    _lomiri("picture_0b", "Picture_0B_by_freespace.jpg", "CC BY 4.0", 'Trevor "Freespace"'),
    _lomiri("picture_1a", "Picture_1A_by_freespace.jpg", "CC BY 4.0", 'Trevor "Freespace"'),
    _lomiri("seeding", "seeding_by_Clements_Engelhardt.jpg", "CC0 1.0", "Clemens Engelhardt"),
    _lomiri("sunset", "sunset_by_Aitzol_Berasategi.jpg", "CC BY 4.0", "Aitzol Berasategi"),
    _lomiri("kleiber", "Kleiber_by_Lukas_Baubkus.jpg", "CC BY-SA 3.0", "Lukas Baubkus", release="20.04"),
    _plasma("BytheWater", "Maciej Wiklo"),
    _plasma("ColdRipple", "Risto Saukonpää"),
    _plasma("ColorfulCups", "Dmitri Popov"),
    _plasma("EveningGlow", "Ian Hex"),
    _plasma("FallenLeaf", "Martin Klapetek"),
    _plasma("Grey", "Sigi Sagi"),
    _plasma("Kite", "Risto Saukonpää"),
    _plasma("OneStandsOut", "Risto Saukonpää"),
    _plasma("Path", "Risto Saukonpää"),
    _plasma("summer_1am", "Risto Saukonpää"),
    _mate("Aqua", "Charles Barbin"),
    _mate("Blinds", "Lennart Poettering, Andrea Cimitan"),
    _mate("Dune", "Marco Cogoni, Hylke Bons"),
    _mate("FreshFlower", "Jens Ansorg"),
    _mate("Garden", "Charles Barbin"),
    _mate("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei"),
    _mate("LadyBird", "Charles Barbin"),
    _mate("RainDrops", "blackcombwhistler07"),
    _mate("Storm", "Sergey Nazarov"),
    _mate("TwoWings", "Charles Barbin, Hylke Bons"),
    _mate("Wood", "Jean-François Fortin Tam"),
    _mate("YellowFlower", "Charles Barbin"),
]}

# Disjoint by photo. wideA/wideB: the default model's photos, twenty per domain (photographs only; the packages'
# drawings and abstract renders were left out by eye), with a similar mix in both domains (flowers, greenery,
# water, sky, objects, animals): `build --photos wide --min-detail 8`. No held-out photo is among them.
# trainA/trainB: three photos per domain, the previous default model's and the quick set the tests build. The
# two motorcycle stereo views show one scene, so only the left one is used. grace_hopper's *sketch* is in
# trainB, so for models trained on it the held-out portrait is held out from domain A only.
SPLITS = {
    "trainA": ("astronaut", "motorcycle_left", "rocket"),
    "trainB": ("grace_hopper", "hubble_deep_field", "retina"),
    "wideA": ("astronaut", "motorcycle_left", "rocket", "flower", "BytheWater", "ColorfulCups", "FallenLeaf",
              "Kite", "Path", "aitzgorri", "dragonfly", "picture_0b", "seeding", "kleiber", "Aqua", "Dune",
              "Garden", "LadyBird", "Storm", "Wood"),
    "wideB": ("hubble_deep_field", "retina", "friends", "bridge", "greentock", "free", "life", "picture_1a",
              "sunset", "ColdRipple", "EveningGlow", "Grey", "OneStandsOut", "summer_1am", "Blinds",
              "FreshFlower", "GreenMeadow", "RainDrops", "TwoWings", "YellowFlower"),
    # The tile benchmark (README's table since the first default model).
    "test": ("chelsea", "coffee"),
    # Ordinary photos of different kinds, evaluated whole, one by one (see the note on grace_hopper above).
    "heldout": ("grace_hopper", "chelsea", "china", "picosdeeuropa", "coffee", "wine", "DarkestHour"),
}
PHOTO_SETS = {"three": ("trainA", "trainB"), "wide": ("wideA", "wideB")}
DEBIAN_PACKAGES = sorted({p.package.split(":", 1)[1] for p in PHOTOS.values() if p.package.startswith("debian:")})
PIP_PACKAGES = {"scikit-image": "scikit-image", "matplotlib": "matplotlib", "scikit-learn": "scikit-learn"}


class MissingPhotos(RuntimeError):
    """Some photos' packages are not installed; the message is one line naming what to install."""


def photo_path(name: str) -> Path:
    """Where the installed package keeps the photo (the file may be missing if the package is not installed)."""
    photo = PHOTOS[name]
    if photo.package.startswith("debian:"):
        return Path(photo.file)
    module = {"scikit-image": "skimage", "matplotlib": "matplotlib", "scikit-learn": "sklearn"}[photo.package]
    try:
        root = Path(__import__(module).__file__).parent
    except ImportError:
        return Path("/nonexistent") / photo.file
    return root.joinpath(*Path(photo.file).parts[1:])


def source(name: str) -> str:
    """Where a photo comes from, for a SOURCES.md row: the package and file, then the credit."""
    p = PHOTOS[name]
    where = (f"Debian package {p.package.split(':', 1)[1]} `{p.file}`" if p.package.startswith("debian:")
             else f"{p.package} `{p.file}`")
    return f"{where}; {p.credit}"


def check_photos(names) -> None:
    """Raises MissingPhotos (one line: the apt-get and pip commands) unless every named photo is installed."""
    missing = [PHOTOS[n] for n in names if not photo_path(n).is_file()]
    debs = sorted({p.package.split(":", 1)[1] for p in missing if p.package.startswith("debian:")})
    pips = sorted({PIP_PACKAGES[p.package] for p in missing if not p.package.startswith("debian:")})
    pips = ['"cyclegan[benchmark]"' if pip == "scikit-image" else pip for pip in pips]   # the extra that has it
    if missing:
        parts = ([f"apt-get install -y {' '.join(debs)}"] if debs else []) + (
            [f"pip install {' '.join(pips)}"] if pips else [])
        raise MissingPhotos(f"{len(missing)} photos are not installed ({', '.join(p.name for p in missing[:4])}"
                            f"{', ...' if len(missing) > 4 else ''}): {'; '.join(parts)}")


def load_photo(name: str, max_side: int | None = None) -> np.ndarray:
    """The photo as HxWx3 uint8, read from the installed package (no network).

    max_side: a large JPEG is decoded at a reduced scale (at least this many pixels on its shorter side).
    Raises MissingPhotos if its package is not installed.
    """
    check_photos([name])
    with Image.open(photo_path(name)) as img:
        if max_side:
            img.draft("RGB", (max_side, max_side))
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _ndimage(feature: str):
    """scipy.ndimage, or cyclegan.optional.MissingExtra (an ImportError) with one line naming the extra."""
    return require("scipy.ndimage", "benchmark", feature)


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
    ndimage = _ndimage("the cartoon style")
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
    ndimage = _ndimage("the sketch style")
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


def tile_detail(tile: np.ndarray) -> float:
    """How much detail an HxWx3 uint8 tile holds: the mean absolute difference between vertically adjacent grey
    (luma) pixels plus that between horizontally adjacent ones, in grey levels (0 for a flat tile; about 16 for
    the three-photo set's tiles, 10-11 for the wide set's, where sky and smooth wallpaper gradients are
    common). `build --min-detail` drops training tiles below a threshold."""
    grey = np.asarray(tile, dtype=np.float64) @ LUMA.astype(np.float64)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


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
    wide_train_stride: int = 56                      # the wide photo set's (twenty photos per domain)
    test_scale: int = 288
    test_tile: int = 128
    test_stride: int = 80
    example_scale: int = 288                         # the gallery's photos: whole photos at this scale
    style: CartoonStyle | SketchStyle = SketchStyle()

    def transform(self, img: np.ndarray) -> np.ndarray:
        return self.style(img)

    def train_tiles(self, split: str, photos: str = "three", min_detail: float = 0.0):
        """(file name, photo name, HxWx3 uint8) for trainA (photo tiles) or trainB (styled photo tiles).

        photos: "three" (SPLITS trainA/trainB, the previous default model's) or "wide" (wideA/wideB, the default
        model's, with min_detail 8).
        min_detail: skip tiles whose tile_detail (of the tile as written: the photo tile in trainA, the styled
        one in trainB) is below this many grey levels; 0 keeps every tile."""
        for photo in SPLITS[PHOTO_SETS[photos][split == "trainB"]]:
            img = load_photo(photo, max_side=2 * max(self.train_scales))
            for short in self.train_scales:
                scaled = resize_short(img, short)
                stride = self.wide_train_stride if photos == "wide" else self.train_stride
                for y, x in tile_grid(*scaled.shape[:2], self.train_tile, stride):
                    tile = np.ascontiguousarray(scaled[y:y + self.train_tile, x:x + self.train_tile])
                    if split == "trainB":
                        tile = self.transform(tile)
                    if min_detail and tile_detail(tile) < min_detail:
                        continue
                    yield f"{photo}_s{short}_y{y:03d}_x{x:03d}.png", photo, tile

    def test_pairs(self):
        """(file name, photo name, photo tile, styled tile): the benchmark, with its ground truth."""
        for photo in SPLITS["test"]:
            scaled = resize_short(load_photo(photo, max_side=2 * self.test_scale), self.test_scale)
            for y, x in tile_grid(*scaled.shape[:2], self.test_tile, self.test_stride):
                tile = np.ascontiguousarray(scaled[y:y + self.test_tile, x:x + self.test_tile])
                yield f"{photo}_y{y:03d}_x{x:03d}.png", photo, tile, self.transform(tile)

    def build(self, out: str | Path, photos: str = "three", min_detail: float = 0.0) -> dict:
        """Writes OUT/trainA, trainB, testA, testB (PNG) and OUT/manifest.json (the photo of every file).

        photos and min_detail select the training tiles (see train_tiles); the test tiles are always all kept.
        """
        out = Path(out)
        manifest: dict[str, dict[str, str]] = {}
        for split in ("trainA", "trainB"):
            folder = out / split
            folder.mkdir(parents=True, exist_ok=True)
            manifest[split] = {}
            for fname, photo, tile in self.train_tiles(split, photos, min_detail):
                Image.fromarray(tile).save(folder / fname)
                manifest[split][fname] = photo
        for split in ("testA", "testB"):
            (out / split).mkdir(parents=True, exist_ok=True)
            manifest[split] = {}
        for fname, photo, tile, styled in self.test_pairs():
            Image.fromarray(tile).save(out / "testA" / fname)
            Image.fromarray(styled).save(out / "testB" / fname)
            manifest["testA"][fname] = manifest["testB"][fname] = photo
        info = {"task": self.name, "name_A": self.name_A, "name_B": self.name_B, "photos": photos,
                "min_detail": min_detail, "splits": dict(SPLITS),
                "files": manifest}
        (out / "manifest.json").write_text(json.dumps(info, indent=1))
        return info

    def heldout_photo(self, photo: str) -> np.ndarray:
        """A held-out photo as the gallery and the held-out benchmark use it: shorter side example_scale."""
        return resize_short(load_photo(photo, max_side=2 * self.example_scale), self.example_scale)

    def write_examples(self, out: str | Path, photos=None) -> list[Path]:
        """Whole held-out photos and their styled versions: OUT/<name_A>/PHOTO.png and OUT/<name_B>/PHOTO.png.

        photos: default SPLITS["heldout"] (never trained on). Raises MissingPhotos before writing anything.
        """
        out = Path(out)
        photos = tuple(photos or SPLITS["heldout"])
        check_photos(photos)
        written = []
        for photo in photos:
            img = self.heldout_photo(photo)
            for domain, arr in ((self.name_A, img), (self.name_B, self.transform(img))):
                (out / domain).mkdir(parents=True, exist_ok=True)
                path = out / domain / f"{photo}.png"
                Image.fromarray(arr).save(path, optimize=True)
                written.append(path)
        return written

    def write_strip(self, out: str | Path, per_domain: int = 4, short: int = 96, photos: str = "three"
                    ) -> list[Path]:
        """A few whole training images of each domain, small JPEGs, for the app's "what the model has seen".

        OUT/<name_A>_NN_PHOTO.jpg from trainA's photos and OUT/<name_B>_NN_PHOTO.jpg (styled) from trainB's,
        shorter side `short` pixels (the styled image is made at the training scale, then resized), and
        OUT/SOURCES.md: each file's source and licence.
        """
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        rows = []
        for split, domain in zip(PHOTO_SETS[photos], (self.name_A, self.name_B)):
            names = SPLITS[split]
            step = max(1, len(names) // per_domain)
            for i, photo in enumerate(names[::step][:per_domain]):
                img = resize_short(load_photo(photo, max_side=2 * self.train_scales[0]), self.train_scales[0])
                if domain == self.name_B:
                    img = self.transform(img)
                path = out / f"{domain}_{i:02d}_{photo}.jpg"
                Image.fromarray(resize_short(img, short)).save(path, quality=85)
                written.append(path)
                made = "the photo" if domain == self.name_A else f"`{self.name_B}()` of the photo"
                rows.append(f"| `{path.name}` | {made}: {source(photo)} | {PHOTOS[photo].licence} |")
        a, b = PHOTO_SETS[photos]
        (out / "SOURCES.md").write_text(
            "# Training examples: sources and licences\n\n"
            f"A few of the model's training images ({len(rows)} of the {len(SPLITS[a]) + len(SPLITS[b])} "
            f"photos it was trained on: `--photos {photos}`), {short} pixels on the shorter side, for the app's "
            f"\"what the model has seen\" strip: {self.name_A} images from {a}, {self.name_B} images from {b} (disjoint "
            "photos), "
            f"written by `python -m cyclegan.photo2sketch strip --photos {photos} --out DIR`.\n\n"
            "| file | source | licence |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n")
        written.append(out / "SOURCES.md")
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
    p.add_argument("command", choices=["build", "examples", "strip", "check"],
                   help="build: the training/test tiles; examples: the held-out photos and their true sketches; "
                        "strip: a few small training images of each domain; check: are all photos installed?")
    p.add_argument("--task", default=DEFAULT_TASK, choices=sorted(TASKS))
    p.add_argument("--out", help="output folder (all commands but check)")
    p.add_argument("--photos", default="three", choices=sorted(PHOTO_SETS),
                   help="training photos for build/strip: three per domain (quick; the previous default model's), "
                        "or twenty (wide: the default model's, built with --min-detail 8)")
    p.add_argument("--min-detail", type=float, default=0.0, metavar="GREY_LEVELS",
                   help="build: skip training tiles with less detail than this (tile_detail: mean absolute "
                        "vertical plus horizontal neighbour difference of the grey tile; 0 keeps all; the "
                        "default model's recipe uses 8 on the wide set)")
    args = p.parse_args(argv)
    if args.min_detail and args.command != "build":
        p.error(f"--min-detail applies to build only, not to {args.command}")
    if args.min_detail < 0:
        p.error(f"--min-detail must be 0 or more grey levels, not {args.min_detail:g}")
    if args.out is None and args.command != "check":
        p.error(f"{args.command} needs --out")
    task = get_task(args.task)
    a, b = PHOTO_SETS[args.photos]
    needed = {"check": PHOTOS, "build": SPLITS[a] + SPLITS[b] + SPLITS["test"], "strip": SPLITS[a] + SPLITS[b],
              "examples": SPLITS["heldout"]}[args.command]
    try:
        check_photos(needed)
    except MissingPhotos as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"all {len(PHOTOS)} photos are installed")
    elif args.command == "build":
        info = task.build(args.out, args.photos, args.min_detail)
        counts = ", ".join(f"{k} {len(v)}" for k, v in info["files"].items())
        print(f"wrote {args.out}: {counts}")
    else:
        paths = (task.write_examples(args.out) if args.command == "examples"
                 else task.write_strip(args.out, photos=args.photos))
        for path in paths:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
