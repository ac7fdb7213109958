"""cyclegan.images: photos as phones and cameras save them (HEIC/HEIF, AVIF, WebP; Display P3 and Adobe RGB
profiles converted to sRGB), read by the one loader that translate, the app and the training data share."""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from cyclegan.images import IMAGE_EXTENSIONS, ImageError, list_images, load_rgb

# -- ICC profiles for the tests, built from their published primaries ------------------------------------------------
# Display P3: DCI-P3 primaries, D65 white, the sRGB transfer curve. Adobe RGB (1998): its primaries, D65 white,
# gamma 563/256. A v2 matrix/TRC display profile holds the D50-adapted (Bradford) colorants and the curves.
D65 = (0.3127, 0.3290)
PRIMARIES = {"p3": ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)),
             "adobe": ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060)),
             "srgb": ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))}
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
D50_XYZ = np.array([0.9642, 1.0, 0.8249])


def xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(name: str) -> np.ndarray:
    """The linear RGB -> XYZ (D65) matrix of a colour space."""
    cols = np.stack([xy_to_xyz(*p) for p in PRIMARIES[name]], 1)
    return cols * np.linalg.solve(cols, xy_to_xyz(*D65))


def decode(name: str, v: np.ndarray) -> np.ndarray:
    if name == "adobe":
        return v ** (563 / 256)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def encode_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0, 1)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def icc_profile(name: str, description: str) -> bytes:
    """A minimal ICC v2 RGB display profile (header, tag table, desc/wtpt/cprt, colorants, curves)."""
    def s15(v: float) -> bytes:
        return struct.pack(">i", int(round(v * 65536)))

    def xyz_tag(xyz) -> bytes:
        return b"XYZ " + b"\0" * 4 + b"".join(s15(v) for v in xyz)

    def text_tag(text: str) -> bytes:
        raw = text.encode("ascii") + b"\0"
        return b"desc" + b"\0" * 4 + struct.pack(">I", len(raw)) + raw + b"\0" * 12 + b"\0" * 67

    if name == "adobe":
        curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(563 / 256 * 256))) + b"\0\0"
    else:  # parametric type 3: the sRGB curve
        params = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
        curve = b"para" + b"\0" * 4 + struct.pack(">HH", 3, 0) + b"".join(s15(v) for v in params)
    cone = BRADFORD @ xy_to_xyz(*D65)
    adapt = np.linalg.inv(BRADFORD) @ np.diag((BRADFORD @ D50_XYZ) / cone) @ BRADFORD
    colorants = adapt @ rgb_to_xyz(name)
    tags = [(b"desc", text_tag(description)), (b"wtpt", xyz_tag(D50_XYZ)),
            (b"cprt", b"text" + b"\0" * 4 + b"no copyright, test data\0"),
            (b"rXYZ", xyz_tag(colorants[:, 0])), (b"gXYZ", xyz_tag(colorants[:, 1])),
            (b"bXYZ", xyz_tag(colorants[:, 2])), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntr" + b"RGB " + b"XYZ "
              + b"\0" * 12 + b"acsp" + b"APPL" + b"\0" * 4 + b"\0" * 8 + b"\0" * 8 + b"\0" * 4
              + s15(D50_XYZ[0]) + s15(D50_XYZ[1]) + s15(D50_XYZ[2]) + b"lcms")
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def expected_srgb(name: str, rgb) -> np.ndarray:
    """What an ICC-aware viewer shows for 8-bit `rgb` in colour space `name`, as sRGB 8-bit values."""
    lin = decode(name, np.asarray(rgb, dtype=np.float64) / 255)
    srgb_lin = np.linalg.solve(rgb_to_xyz("srgb"), rgb_to_xyz(name) @ lin)
    return encode_srgb(srgb_lin) * 255


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


COLOURS = [(200, 100, 50), (40, 160, 90), (120, 120, 220), (128, 128, 128)]


def swatches() -> Image.Image:
    """Four flat 16x16 colour patches side by side (flat, so lossy codecs keep them)."""
    arr = np.zeros((16, 64, 3), np.uint8)
    for i, c in enumerate(COLOURS):
        arr[:, 16 * i:16 * (i + 1)] = c
    return Image.fromarray(arr)


def patch_means(img: Image.Image) -> np.ndarray:
    arr = np.asarray(img, dtype=np.float64)
    return np.stack([arr[4:12, 16 * i + 4:16 * i + 12].reshape(-1, 3).mean(0) for i in range(len(COLOURS))])


@pytest.mark.parametrize("space", ["p3", "adobe"])
def test_an_embedded_profile_is_converted_to_srgb(space):
    icc = icc_profile(space, {"p3": "Display P3", "adobe": "Adobe RGB (1998)"}[space])
    img = load_rgb(encode(swatches(), "PNG", icc_profile=icc))
    got = patch_means(img)
    want = np.stack([expected_srgb(space, c) for c in COLOURS])
    assert np.abs(got - want).max() <= 2.0, (got, want)
    # and it is a real change: the same numbers read as sRGB would be visibly different colours
    assert np.abs(got - np.asarray(COLOURS)).max() >= 10


def test_no_profile_and_srgb_profile_leave_the_pixels_alone():
    plain = swatches()
    assert np.array_equal(np.asarray(load_rgb(encode(plain, "PNG"))), np.asarray(plain))
    tagged = encode(plain, "PNG", icc_profile=icc_profile("srgb", "sRGB IEC61966-2.1"))
    assert np.array_equal(np.asarray(load_rgb(tagged)), np.asarray(plain))


def test_a_broken_profile_is_ignored_not_fatal():
    img = load_rgb(encode(swatches(), "PNG", icc_profile=b"not a profile at all"))
    assert np.array_equal(np.asarray(img), np.asarray(swatches()))


@pytest.mark.parametrize("fmt,ext", [("HEIF", ".heic"), ("AVIF", ".avif"), ("WEBP", ".webp")])
def test_phone_formats_with_a_display_p3_profile(tmp_path, fmt, ext):
    """iPhones save HEIC in Display P3; Android phones AVIF or WebP: read, oriented and converted to sRGB."""
    icc = icc_profile("p3", "Display P3")
    path = tmp_path / f"photo{ext}"
    path.write_bytes(encode(swatches(), fmt, icc_profile=icc, quality=100))
    assert path.suffix in IMAGE_EXTENSIONS and list_images(tmp_path) == [path]
    img = load_rgb(path)
    assert img.mode == "RGB" and img.size == (64, 16)
    want = np.stack([expected_srgb("p3", c) for c in COLOURS])
    assert np.abs(patch_means(img) - want).max() <= 4.0    # lossy codecs at their best quality


def test_camera_jpeg_in_adobe_rgb(tmp_path):
    """Cameras set to Adobe RGB embed the profile in the JPEG (APP2 segments)."""
    path = tmp_path / "camera.jpg"
    swatches().save(path, "JPEG", icc_profile=icc_profile("adobe", "Adobe RGB (1998)"), quality=100, subsampling=0)
    want = np.stack([expected_srgb("adobe", c) for c in COLOURS])
    assert np.abs(patch_means(load_rgb(path)) - want).max() <= 3.0


def test_heic_orientation_is_applied(tmp_path):
    img = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6                                           # shown rotated by 90 degrees
    path = tmp_path / "rotated.heic"
    img.save(path, "HEIF", exif=exif.tobytes())
    assert load_rgb(path).size == (20, 40)


def test_truncated_heic_is_a_readable_error(tmp_path):
    data = encode(swatches(), "HEIF")
    path = tmp_path / "cut.heic"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.heic"):
        load_rgb(path)


def test_training_data_uses_the_same_loader(tmp_path):
    """cyclegan.data reads a P3 HEIC photo in sRGB, like translate and the app."""
    from cyclegan.data import FolderDomain
    (tmp_path / "A").mkdir()
    encoded = encode(swatches(), "HEIF", icc_profile=icc_profile("p3", "Display P3"), quality=100)
    (tmp_path / "A" / "x.heic").write_bytes(encoded)
    domain = FolderDomain(tmp_path / "A")
    assert len(domain) == 1
    want = np.stack([expected_srgb("p3", c) for c in COLOURS])
    assert np.abs(patch_means(domain.load(0)) - want).max() <= 4.0
