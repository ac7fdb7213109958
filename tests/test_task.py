"""The benchmark tasks: photos load offline, the styles are deterministic and spatial, splits are disjoint."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from cyclegan.photo2sketch import DEFAULT_TASK, PHOTOS, SPLITS, TASKS, cartoon, get_task, load_photo, main, sketch, task_for, tile_grid

pytest.importorskip("skimage")
pytest.importorskip("matplotlib")


def small_task(name: str = DEFAULT_TASK):
    """The real task with fewer, sparser tiles, so a build takes a second or two."""
    return dataclasses.replace(get_task(name), train_scales=(160,), train_stride=200, test_stride=160)


def digest(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_photo_loads_offline_as_rgb_and_has_a_licence():
    for name, photo in PHOTOS.items():
        img = load_photo(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256
        assert photo.licence and photo.credit
    used = [p for split in SPLITS.values() for p in split]
    assert sorted(used) == sorted(PHOTOS)


def test_splits_are_disjoint_by_photo():
    a, b, test = (set(SPLITS[k]) for k in ("trainA", "trainB", "test"))
    assert not a & b and not a & test and not b & test
    assert a and b and test


def step_image() -> np.ndarray:
    step = np.full((32, 32, 3), 60, np.uint8)
    step[:, 16:] = 200
    return step


def check_deterministic_and_different(style, min_mean_change: float) -> None:
    """style(photo) keeps shape and dtype, repeats exactly, and clearly changes the photo."""
    img = load_photo("chelsea")[:96, :128]
    out = style(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, style(img.copy()))
    assert np.abs(out.astype(int) - img.astype(int)).mean() > min_mean_change  # a clearly different look


def test_sketch_is_deterministic_and_not_a_pixelwise_map():
    check_deterministic_and_different(sketch, 20)
    # The same colour becomes different colours depending on its neighbourhood: a stroke beside the edge.
    styled = sketch(step_image())
    assert np.array_equal(step_image()[16, 2], step_image()[16, 13])
    assert int(styled[16, 13].sum()) < int(styled[16, 2].sum()) - 120
    # A flat image has no strokes, only its wash: the same hue, lighter; a white one is blank paper.
    red = np.zeros((20, 20, 3), np.uint8)
    red[..., 0] = 200
    flat = sketch(red)
    assert (flat == flat[0, 0]).all()
    assert flat[0, 0, 0] > 200 and flat[0, 0, 0] > flat[0, 0, 1] == flat[0, 0, 2] > 0
    assert (sketch(np.full((20, 20, 3), 255, np.uint8)) == 255).all()
    # Darker photos give a darker wash.
    assert sketch(np.full((8, 8, 3), 40, np.uint8))[0, 0, 0] < sketch(np.full((8, 8, 3), 120, np.uint8))[0, 0, 0]


def test_cartoon_is_deterministic_and_not_a_pixelwise_map():
    check_deterministic_and_different(cartoon, 5)
    # The same colour becomes different colours depending on its neighbourhood: a dark line on an edge.
    styled = cartoon(step_image())
    far, near = styled[16, 4], styled[16, 15]
    assert int(near.sum()) < int(far.sum()) // 2
    # A flat image stays flat (no lines), quantised to one band.
    flat = cartoon(np.full((20, 20, 3), 120, np.uint8))
    assert (flat == flat[0, 0]).all()


def test_tasks_are_found_by_name_and_by_domain_names():
    assert set(TASKS) == {"photo2sketch", "photo2cartoon"}
    assert task_for("photo", "sketch") is get_task("photo2sketch") and task_for("horse", "zebra") is None
    with pytest.raises(KeyError, match="known tasks"):
        get_task("nope")


def test_tile_grid_covers_the_image():
    corners = tile_grid(100, 250, 64, 40)
    assert (0, 0) in corners and (100 - 64, 250 - 64) in corners
    covered = np.zeros((100, 250), bool)
    for y, x in corners:
        covered[y:y + 64, x:x + 64] = True
    assert covered.all()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_build_is_deterministic_with_disjoint_splits_and_ground_truth(tmp_path, name):
    task = small_task(name)
    info = task.build(tmp_path / "one")
    task.build(tmp_path / "two")
    assert digest(tmp_path / "one") == digest(tmp_path / "two")  # byte for byte

    files = info["files"]
    photos = {split: set(files[split].values()) for split in files}
    assert photos["trainA"] == set(SPLITS["trainA"]) and photos["trainB"] == set(SPLITS["trainB"])
    assert photos["testA"] == photos["testB"] == set(SPLITS["test"])
    assert not photos["trainA"] & photos["trainB"]
    assert not (photos["trainA"] | photos["trainB"]) & photos["testA"]
    assert json.loads((tmp_path / "one" / "manifest.json").read_text())["files"] == files

    for split in ("trainA", "trainB", "testA", "testB"):
        names = sorted(p.name for p in (tmp_path / "one" / split).iterdir())
        assert names == sorted(files[split]) and names
    # Ground truth: every testB image is the styled testA image of the same name.
    for name in files["testA"]:
        a = np.asarray(Image.open(tmp_path / "one" / "testA" / name))
        b = np.asarray(Image.open(tmp_path / "one" / "testB" / name))
        assert a.shape == (task.test_tile, task.test_tile, 3)
        assert np.array_equal(b, task.transform(a))
    size = Image.open(next((tmp_path / "one" / "trainB").iterdir())).size
    assert size == (task.train_tile, task.train_tile)


def test_cli_writes_examples(tmp_path, capsys):
    assert main(["examples", "--out", str(tmp_path)]) == 0
    for photo in SPLITS["test"]:
        a = np.asarray(Image.open(tmp_path / "photo" / f"{photo}.png"))
        b = np.asarray(Image.open(tmp_path / "sketch" / f"{photo}.png"))
        assert np.array_equal(b, sketch(a))
