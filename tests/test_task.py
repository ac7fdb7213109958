"""The benchmark tasks: photos load offline, the styles are deterministic and spatial, splits are disjoint."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan import photo2sketch
from cyclegan.photo2sketch import (DEBIAN_PACKAGES, DEFAULT_TASK, PHOTOS, SPLITS, TASKS, MissingPhotos, cartoon, check_photos,
                                   get_task, load_photo, main, photo_path, sketch, task_for, tile_detail, tile_grid)

pytest.importorskip("skimage")
pytest.importorskip("matplotlib")

INSTALLED = all(photo_path(n).is_file() for n in PHOTOS)
needs_all_photos = pytest.mark.skipif(
    not INSTALLED, reason="the photo packages are not installed: scripts/photo2sketch.sh install")


def small_task(name: str = DEFAULT_TASK):
    """The real task with fewer, sparser tiles, so a build takes a second or two."""
    return dataclasses.replace(get_task(name), train_scales=(160,), train_stride=200, test_stride=160)


def digest(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_installed_photo_loads_offline_as_rgb_and_has_a_licence():
    loaded = 0
    for name, photo in PHOTOS.items():
        assert photo.licence and photo.credit
        if not photo_path(name).is_file():
            with pytest.raises(MissingPhotos, match="apt-get install -y|pip install"):
                load_photo(name)
            continue
        img = load_photo(name, max_side=512)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 256
        loaded += 1
    assert loaded >= 8  # at least the scikit-image and matplotlib photos (the benchmark extra)
    used = {p for split in SPLITS.values() for p in split}
    assert used == set(PHOTOS)
    assert DEBIAN_PACKAGES == sorted({p.package[len("debian:"):] for p in PHOTOS.values()
                                      if p.package.startswith("debian:")})


def test_a_missing_photo_package_is_named_in_one_line(monkeypatch, tmp_path, capsys):
    real = photo_path
    monkeypatch.setattr(photo2sketch, "photo_path",
                        lambda n: tmp_path / "gone.jpg" if PHOTOS[n].package.startswith("debian:") else real(n))
    with pytest.raises(MissingPhotos) as e:
        check_photos(["grace_hopper", "wine", "DarkestHour"])
    msg = str(e.value)
    assert "\n" not in msg and "2 photos" in msg
    assert "apt-get install -y lomiri-wallpapers-16.04 plasma-workspace-wallpapers" in msg
    check_photos(["grace_hopper", "chelsea"])  # Python-package photos are still there
    assert main(["build", "--photos", "wide", "--out", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "apt-get install -y" in err
    assert not (tmp_path / "data").exists()  # nothing half-written


def test_splits_are_disjoint_by_photo_and_the_held_out_photos_cover_each_kind():
    test, held = set(SPLITS["test"]), set(SPLITS["heldout"])
    for a, b in (("trainA", "trainB"), ("wideA", "wideB")):
        a, b = set(SPLITS[a]), set(SPLITS[b])
        assert a and b and not a & b and not (a | b) & test
        assert not a & held  # no held-out photo is a domain-A training photo
    assert not set(SPLITS["wideB"]) & held
    assert set(SPLITS["trainB"]) & held == {"grace_hopper"}  # the shipped model saw its sketch (documented)
    assert test <= held
    kinds = {PHOTOS[n].kind for n in held}
    for kind in ("portrait", "animal", "building", "landscape", "food", "indoor", "low light"):
        assert any(k.startswith(kind) for k in kinds), kind


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


def test_tile_detail_is_zero_when_flat_and_counts_grey_level_steps():
    flat = np.full((16, 16, 3), 200, np.uint8)
    assert tile_detail(flat) == 0
    stripes = flat.copy()
    stripes[:, ::2] = 190  # every horizontal neighbour differs by 10 grey levels, no vertical one
    assert tile_detail(stripes) == pytest.approx(10, abs=1e-6)
    assert tile_detail(stripes.transpose(1, 0, 2)) == pytest.approx(10, abs=1e-6)


def test_min_detail_drops_only_the_flatter_training_tiles(tmp_path, capsys):
    task = small_task()
    full = task.build(tmp_path / "all")
    details = {split: {name: tile_detail(np.asarray(Image.open(tmp_path / "all" / split / name)))
                       for name in full["files"][split]} for split in ("trainA", "trainB")}
    threshold = float(np.median(list(details["trainA"].values())))
    kept = task.build(tmp_path / "kept", min_detail=threshold)
    assert 0 < len(kept["files"]["trainA"]) < len(full["files"]["trainA"])
    for split in ("trainA", "trainB"):
        expected = {n for n, d in details[split].items() if d >= threshold}
        assert set(kept["files"][split]) == expected
        for name in expected:  # the kept tiles are the same files
            assert (tmp_path / "kept" / split / name).read_bytes() == (tmp_path / "all" / split / name).read_bytes()
    assert kept["files"]["testA"] == full["files"]["testA"]  # the benchmark keeps every tile
    assert json.loads((tmp_path / "kept" / "manifest.json").read_text())["min_detail"] == threshold
    with pytest.raises(SystemExit):
        main(["build", "--out", str(tmp_path / "bad"), "--min-detail", "-1"])
    assert "--min-detail must be 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@needs_all_photos
def test_cli_writes_the_held_out_examples_and_the_training_strip(tmp_path, capsys):
    assert main(["examples", "--out", str(tmp_path)]) == 0
    assert sorted(p.stem for p in (tmp_path / "photo").iterdir()) == sorted(SPLITS["heldout"])
    for photo in SPLITS["heldout"]:
        a = np.asarray(Image.open(tmp_path / "photo" / f"{photo}.png"))
        b = np.asarray(Image.open(tmp_path / "sketch" / f"{photo}.png"))
        assert np.array_equal(b, sketch(a))
    strip = tmp_path / "strip"
    assert main(["strip", "--out", str(strip)]) == 0
    files = sorted(p.name for p in strip.glob("*.jpg"))
    photos = [f for f in files if f.startswith("photo_")]
    sketches = [f for f in files if f.startswith("sketch_")]
    assert len(photos) == len(SPLITS["trainA"]) and len(sketches) == len(SPLITS["trainB"])
    # From the training splits only, small.
    assert all(f.split("_", 2)[2][:-4] in SPLITS["trainA"] for f in photos)
    assert all(f.split("_", 2)[2][:-4] in SPLITS["trainB"] for f in sketches)
    assert all(min(Image.open(strip / f).size) == 96 and (strip / f).stat().st_size < 30_000 for f in files)
    # The shipped strip is what the command writes.
    shipped = Path(__file__).resolve().parents[1] / "models" / "photo2sketch" / "training_examples"
    sources = (strip / "SOURCES.md").read_text()
    assert all(f"`{f}`" in sources for f in files) and "public domain (NASA)" in sources
    # The default model's strip: four of the wide set's photos per domain, exactly as the recipe writes them.
    assert main(["strip", "--photos", "wide", "--out", str(tmp_path / "wide")]) == 0
    wide = sorted(p.name for p in (tmp_path / "wide").glob("*.jpg"))
    assert len(wide) == 8 and all(f.split("_", 2)[2][:-4] in SPLITS["wideA"] + SPLITS["wideB"] for f in wide)
    if shipped.is_dir():
        assert sorted(p.name for p in shipped.glob("*.jpg")) == wide
        assert (shipped / "SOURCES.md").read_text() == (tmp_path / "wide" / "SOURCES.md").read_text()
