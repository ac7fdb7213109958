"""Data: any common image format becomes RGB the right way up; bad files are skipped; bad folders stop early."""
import io

import numpy as np
import pytest
from PIL import Image

from conftest import run_train
from cyclegan.data import DataError, EpochSampler, UnpairedImages, folder_domains, hf_domains
from cyclegan.images import ImageError, load_rgb, write_png_once


def save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


@pytest.fixture
def photo():
    """A 40x20 image whose left half is red and right half blue, so orientation can be checked."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (220, 20, 20)
    arr[:, 20:] = (20, 20, 220)
    return Image.fromarray(arr)


def test_exif_rotation_is_applied(photo, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img = load_rgb(save(photo, tmp_path / "r.jpg", exif=exif, quality=95))
    assert img.size == (20, 40)
    top = np.asarray(img)[2, 10]
    assert top[0] > 150 and top[2] < 100  # the red half is now on top


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "LA"])
def test_modes_become_rgb(photo, tmp_path, mode):
    if mode == "I;16":
        arr = (np.asarray(photo.convert("L"), np.uint16) * 257)
        img = Image.frombytes("I;16", (40, 20), arr.astype("<u2").tobytes())
        path = save(img, tmp_path / "x16.png")
    elif mode == "P":
        path = save(photo.quantize(4), tmp_path / "p.png")
    else:
        path = save(photo.convert(mode), tmp_path / f"x.{'jpg' if mode == 'CMYK' else 'png'}")
    out = load_rgb(path)
    assert out.mode == "RGB" and out.size == (40, 20)
    grey_left = np.asarray(photo.convert("L"))[5, 5]
    assert abs(int(np.asarray(out.convert("L"))[5, 5]) - int(grey_left)) < 12


def test_transparent_pixels_become_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    out = load_rgb(save(img, tmp_path / "t.png"))
    assert np.asarray(out).min() == 255


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert tuple(np.asarray(load_rgb(tmp_path / "a.gif"))[0, 0]) == (255, 0, 0)


def test_unreadable_inputs_raise_readable_errors(photo, tmp_path):
    data = io.BytesIO()
    photo.save(data, "PNG")
    (tmp_path / "trunc.png").write_bytes(data.getvalue()[:60])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageError, match="truncated|corrupt"):
        load_rgb(tmp_path / "trunc.png")
    with pytest.raises(ImageError, match="empty"):
        load_rgb(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="not an image"):
        load_rgb(tmp_path / "text.png")
    with pytest.raises(ImageError, match="pixels is more than the limit"):
        load_rgb(save(photo, tmp_path / "big.png"), max_pixels=100)


def test_write_png_once_writes_each_picture_once_and_whole(tmp_path):
    # The app hands Gradio these files; a picture sent twice must not be rewritten under a reader's feet.
    picture = (np.random.default_rng(0).random((9, 13, 3)) * 255).astype(np.uint8)
    path = write_png_once(picture, tmp_path, "G_x")
    assert path.name == "G_x.png" and np.array_equal(np.asarray(Image.open(path)), picture)
    before = path.stat()
    assert write_png_once(picture.copy(), tmp_path, "G_x") == path
    assert path.stat().st_ino == before.st_ino                     # the same file, not a new copy
    other = write_png_once(picture[..., 0], tmp_path, "G_x")       # another picture: another file
    assert other != path and np.array_equal(np.asarray(Image.open(other)), picture[..., 0])
    assert not list(tmp_path.rglob(".staging-*"))


def test_augmentation_is_a_function_of_seed_epoch_and_index(tiny_data):
    A, B = folder_domains(tiny_data)
    ds = UnpairedImages(A, B, load_size=72, crop_size=64, seed=1)
    assert ds[(0, 3)]["A"].shape == (3, 64, 64)
    assert (ds[(0, 3)]["A"] == ds[(0, 3)]["A"]).all() and (ds[(0, 3)]["B"] == ds[(0, 3)]["B"]).all()
    assert not all((ds[(0, 3)]["A"] == ds[(e, 3)]["A"]).all() for e in range(1, 4))  # crops change per epoch


def test_epoch_sampler_splits_an_epoch_between_ranks_and_resumes():
    full = list(EpochSampler(10, seed=0, epoch=2))
    assert sorted(i for _, i in full) == list(range(10))
    r0, r1 = list(EpochSampler(10, 0, 2, rank=0, world_size=2)), list(EpochSampler(10, 0, 2, rank=1, world_size=2))
    assert len(r0) == len(r1) == 5 and set(r0).isdisjoint(r1)
    assert list(EpochSampler(10, 0, 2, skip=4)) == full[4:]
    assert full != list(EpochSampler(10, 0, 3))


def test_missing_and_empty_domains_are_clear_errors_before_training(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        folder_domains(tmp_path / "nowhere")
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    (tmp_path / "trainA" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"trainA holds no images"):
        folder_domains(tmp_path)
    r = run_train("--data", str(tmp_path), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "trainA holds no images" in r.stderr
    assert not (tmp_path / "run").exists()


def test_training_skips_a_truncated_image_with_a_warning(tiny_data, tmp_path):
    import shutil
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    good = (root / "trainA" / "000.png").read_bytes()
    (root / "trainA" / "001.png").write_bytes(good[: len(good) // 3])
    r = run_train("--data", str(root), "--out", str(tmp_path / "run"), "--max-steps", "8", "--save-every", "0")
    assert r.returncode == 0, r.stderr
    assert "skipping unreadable image" in r.stderr and "001.png" in r.stderr
    assert r.stderr.count("skipping unreadable image") == 1  # warned once, not at every visit


def test_hugging_face_dataset_with_two_image_columns(tmp_path):
    datasets = pytest.importorskip("datasets")
    from synthetic import scene
    rng = np.random.default_rng(0)
    rows = {"imageA": [scene(rng, 48, "A") for _ in range(5)], "imageB": [scene(rng, 48, "B") for _ in range(4)] + [None]}
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features({"imageA": datasets.Image(), "imageB": datasets.Image()}))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "hfds"))
    A, B = hf_domains(str(tmp_path / "hfds"))
    assert (len(A), len(B)) == (5, 4)  # the empty cell is not an image
    r = run_train("--hf-dataset", str(tmp_path / "hfds"), "--out", str(tmp_path / "run"), "--max-steps", "3",
                  "--load-size", "48", "--crop-size", "32", "--name-A", "warm", "--name-B", "cool")
    assert r.returncode == 0, r.stderr
    from cyclegan import CycleGAN
    assert CycleGAN.from_pretrained(tmp_path / "run" / "model").direction_label("AtoB") == "warm -> cool"
    bad = run_train("--hf-dataset", str(tmp_path / "hfds"), "--hf-columns", "photo", "imageB", "--out",
                    str(tmp_path / "run2"))
    assert bad.returncode == 2 and "no column 'photo'" in bad.stderr
