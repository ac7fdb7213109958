"""cyclegan.backends.accelerate: ONNX Runtime generators equal PyTorch's; any failure keeps PyTorch and says so."""
import sys

import pytest
import torch

from cyclegan import backends
from cyclegan.model import CycleGAN
from cyclegan.tiled import generate


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CycleGAN(ngf=8, n_blocks=2).eval()


def test_onnxruntime_generators_match_pytorch_and_are_cached(model, tmp_path):
    fast = backends.accelerate(model, tmp_path, threads=1, backend="onnxruntime")
    assert type(fast.G_AB).__name__ == "OnnxRuntimeModule" and "ONNX Runtime" in fast.source
    assert type(model.G_AB).__name__ == "ResnetGenerator"             # the original is untouched
    x = torch.rand(2, 3, 36, 52) * 2 - 1                              # not the export size: dynamic axes
    with torch.no_grad():
        assert (fast.G_BA(x) - model.G_BA(x)).abs().max() < 1e-4
        # tiled inference runs the wrapped module's PyTorch layers
        assert (generate(fast.G_AB, x[:1], tile=16) - model.G_AB(x[:1])).abs().max() < 1e-4
    files = sorted(tmp_path.glob("*.onnx"))
    assert len(files) == 2                                            # one per generator, keyed by weights
    stamp = [f.stat().st_mtime_ns for f in files]
    backends.accelerate(model, tmp_path, threads=1, backend="onnxruntime")
    assert [f.stat().st_mtime_ns for f in files] == stamp             # the second start reuses the exports


def test_torch_backend_and_unknown_names(model, tmp_path):
    assert backends.accelerate(model, tmp_path, backend="torch") is model
    with pytest.raises(ValueError, match="unknown backend"):
        backends.accelerate(model, tmp_path, backend="tensorrt")


def test_missing_extra_falls_back_to_pytorch(model, tmp_path, monkeypatch):
    for name in ("onnxruntime", "onnx", "onnxscript"):
        monkeypatch.setitem(sys.modules, name, None)                 # "import onnxruntime" now fails
    m = CycleGAN(ngf=8, n_blocks=2).eval()
    fast = backends.accelerate(m, tmp_path, backend="onnxruntime")
    assert fast is m and "running PyTorch" in fast.source
    assert "needs the 'onnx' extra: pip install" in fast.source
    assert list(tmp_path.iterdir()) == []
