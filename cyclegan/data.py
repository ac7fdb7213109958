"""Unpaired training data: two image domains from folders (ROOT/trainA, ROOT/trainB) or a Hugging Face
dataset with two image columns.

Augmentation is a pure function of (seed, epoch, index), and `EpochSampler` orders each epoch from
(seed, epoch) alone, so a resumed run sees exactly the images and crops it would have seen.
"""
from __future__ import annotations

import math
import os
import random
import warnings
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from .images import ImageError, list_images, load_rgb, pil_to_tensor
from .optional import MissingExtra, require


class DataError(RuntimeError):
    """The training data cannot be used at all (a missing or empty domain...)."""


class FolderDomain:
    """The images of one domain, from a folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"image folder {self.folder} does not exist")
        self.files = list_images(self.folder)
        if not self.files:
            raise DataError(f"image folder {self.folder} holds no images (looked for .jpg, .png, .webp, ... files)")

    def __len__(self) -> int:
        return len(self.files)

    def name(self, k: int) -> str:
        return str(self.files[k])

    def load(self, k: int) -> Image.Image:
        return load_rgb(self.files[k])


class HFColumnDomain:
    """The images of one domain, from one image column of a Hugging Face dataset (empty cells skipped)."""

    def __init__(self, dataset, column: str, label: str):
        datasets = require("datasets", "datasets", "Training on a Hugging Face dataset")

        if column not in dataset.column_names:
            raise DataError(f"dataset {label} has no column {column!r}; its columns are {dataset.column_names}")
        self.raw = dataset.cast_column(column, datasets.Image(decode=False)).select_columns([column])
        self.column, self.label = column, label
        self.rows = [i for i, v in enumerate(self.raw[column]) if v is not None]
        if not self.rows:
            raise DataError(f"column {column!r} of dataset {label} holds no images")

    def __len__(self) -> int:
        return len(self.rows)

    def name(self, k: int) -> str:
        return f"{self.label}[{self.rows[k]}].{self.column}"

    def load(self, k: int) -> Image.Image:
        cell = self.raw[self.rows[k]][self.column]
        return load_rgb(cell["bytes"] if cell.get("bytes") else cell["path"])


def folder_domains(root: str | Path, phase: str = "train") -> tuple[FolderDomain, FolderDomain]:
    """ROOT/{phase}A and ROOT/{phase}B, the reference implementation's layout."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} " + ("is a file, not a folder" if root.exists() else "does not exist"))
    return FolderDomain(root / f"{phase}A"), FolderDomain(root / f"{phase}B")


def hf_domains(name_or_path: str, column_A: str = "imageA", column_B: str = "imageB",
               split: str = "train") -> tuple[HFColumnDomain, HFColumnDomain]:
    """A Hub dataset by name (e.g. huggan/horse2zebra) or a local `save_to_disk` folder."""
    try:
        datasets = require("datasets", "datasets", "Training on a Hugging Face dataset")
    except MissingExtra as err:
        raise DataError(str(err)) from None
    try:
        if os.path.isdir(name_or_path):
            ds = datasets.load_from_disk(name_or_path)
        else:
            ds = datasets.load_dataset(name_or_path)
    except Exception as e:  # datasets raises many kinds: not found, offline, not a dataset folder, bad files
        first = (str(e).strip().splitlines() or [""])[0][:300]
        kind = "a folder" if os.path.isdir(name_or_path) else "no such folder, nor a dataset of that name"
        raise DataError(f"cannot load the Hugging Face dataset {name_or_path!r} ({kind}): "
                        f"{type(e).__name__}: {first}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"dataset {name_or_path} has no split {split!r}; it has {list(ds)}")
        ds = ds[split]
    label = f"{name_or_path}:{split}"
    return HFColumnDomain(ds, column_A, label), HFColumnDomain(ds, column_B, label)


class UnpairedImages(Dataset):
    """Item (epoch, i): image i % len(A) of A and a random image of B, each resized to load_size,
    randomly cropped to crop_size and randomly flipped; tensors in [-1, 1]."""

    def __init__(self, domain_A, domain_B, load_size: int = 286, crop_size: int = 256, flip: bool = True,
                 seed: int = 0):
        if crop_size > load_size:
            raise DataError(f"crop size {crop_size} is larger than load size {load_size}")
        self.A, self.B = domain_A, domain_B
        self.load_size, self.crop_size, self.flip, self.seed = load_size, crop_size, flip, seed
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return max(len(self.A), len(self.B))

    def __getitem__(self, item: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, i = item
        rng = random.Random(f"{self.seed}:{epoch}:{i}")
        k_B = rng.randrange(len(self.B))
        return {"A": self._augment(self._load(self.A, i % len(self.A)), rng),
                "B": self._augment(self._load(self.B, k_B), rng)}

    def _load(self, domain, k: int) -> Image.Image:
        # An unreadable file is skipped (with one warning naming it) in favour of the next one.
        for step in range(len(domain)):
            j = (k + step) % len(domain)
            try:
                return domain.load(j)
            except ImageError as e:
                if domain.name(j) not in self._warned:
                    self._warned.add(domain.name(j))
                    warnings.warn(f"skipping unreadable image {domain.name(j)}: {e}", stacklevel=2)
        raise DataError("no image of this domain could be read")

    def _augment(self, img: Image.Image, rng: random.Random) -> torch.Tensor:
        img = img.resize((self.load_size, self.load_size), Image.BICUBIC)
        x = rng.randint(0, self.load_size - self.crop_size)
        y = rng.randint(0, self.load_size - self.crop_size)
        img = img.crop((x, y, x + self.crop_size, y + self.crop_size))
        if self.flip and rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return pil_to_tensor(img)[0]


class EpochSampler(Sampler):
    """Yields (epoch, index) for one epoch: a permutation drawn from (seed, epoch), this rank's share of it,
    starting after the first `skip` items (to resume mid-epoch)."""

    def __init__(self, n: int, seed: int, epoch: int, skip: int = 0, rank: int = 0, world_size: int = 1):
        self.n, self.seed, self.epoch, self.skip = n, seed, epoch, skip
        self.rank, self.world_size = rank, world_size

    def per_rank(self) -> int:
        return math.ceil(self.n / self.world_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[: self.per_rank() * self.world_size - self.n]  # pad so every rank gets as many
        mine = order[self.rank::self.world_size]
        return iter([(self.epoch, i) for i in mine[self.skip:]])

    def __len__(self) -> int:
        return self.per_rank() - self.skip
