"""python -m cyclegan.export: both generators as ONNX, checked, documented, never over existing files."""
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan import export
from cyclegan.model import CycleGAN

import onnxruntime as ort  # the "onnx" extra; requirements-dev.txt installs it, so this runs in CI


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny")
    CycleGAN(name_A="horse", name_B="zebra", ngf=8, n_blocks=2).save_pretrained(path)
    return path


def test_export_writes_checked_dynamic_graphs_and_a_working_readme(tiny, tmp_path):
    out = tmp_path / "onnx"
    assert export.main(["--model", str(tiny), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["G_AB.onnx", "G_BA.onnx", "README.md"]
    model = CycleGAN.from_pretrained(tiny).eval()
    for name in ("G_AB", "G_BA"):
        session = ort.InferenceSession(str(out / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        dims = session.get_inputs()[0].shape
        assert all(isinstance(d, str) for d in (dims[0], dims[2], dims[3])), dims   # batch, height, width dynamic
        x = torch.rand(3, 3, 44, 76) * 2 - 1                        # a size the export check did not use
        with torch.no_grad():
            ref = getattr(model, name)(x).numpy()
        assert np.abs(session.run(None, {"x": x.numpy()})[0] - ref).max() < 1e-3
    text = (out / "README.md").read_text()
    assert "horse -> zebra" in text and "zebra -> horse" in text

    # the README's snippet, run as written next to the files, translates an odd-sized photo like PyTorch does
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    rgb = (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(out / "input.jpg", quality=100)
    run = subprocess.run([sys.executable, "-c", snippet], cwd=out, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = np.asarray(Image.open(out / "output.png"))
    assert got.shape == (37, 53, 3)
    x = torch.from_numpy(np.asarray(Image.open(out / "input.jpg"), dtype=np.float32)).permute(2, 0, 1)[None]
    x = torch.nn.functional.pad(x / 127.5 - 1, (0, 3, 0, 3), mode="reflect")
    with torch.no_grad():
        ref = ((model.G_AB(x)[0, :, :37, :53].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).numpy()
    assert np.abs(got.astype(np.float64) - ref).max() <= 1


def test_export_never_overwrites(tiny, tmp_path, capsys):
    (tmp_path / "README.md").write_text("mine")
    assert export.main(["--model", str(tiny), "--out", str(tmp_path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
    assert (tmp_path / "README.md").read_text() == "mine"


def test_a_failed_check_writes_nothing(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export, "TOLERANCE", 0.0)       # no export matches PyTorch to the last bit
    assert export.main(["--model", str(tiny), "--out", str(tmp_path / "o")]) == 1
    assert "nothing written" in capsys.readouterr().err
    assert list((tmp_path / "o").iterdir()) == []


def test_the_command_line_entry_point(tiny, tmp_path):
    run = subprocess.run([sys.executable, "-m", "cyclegan.export", "--model", str(tiny), "--out",
                          str(tmp_path / "cli")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "G_BA.onnx  2x3x96x64" in run.stderr
    assert (tmp_path / "cli" / "G_BA.onnx").stat().st_size > 1000


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_out_that_cannot_be_a_folder_is_one_line_before_anything_loads(tiny, tmp_path, capsys, where):
    """--out naming a file (or a folder under a file) was a raw FileExistsError / NotADirectoryError traceback."""
    (tmp_path / "a.png").write_bytes(b"not a folder")
    out = tmp_path / "a.png" if where == "a file" else tmp_path / "a.png" / "onnx"
    assert export.main(["--model", str(tiny), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a.png" in err and err.endswith(".")
    assert (tmp_path / "a.png").read_bytes() == b"not a folder"
