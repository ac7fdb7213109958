"""Which engine runs the generators: PyTorch (eager) or ONNX Runtime, and the ONNX export both share.

    from cyclegan.backends import accelerate
    model = accelerate(load_model("models/photo2sketch"), cache_dir=".gradio/onnx", threads=2)
    model.G_AB(x)               # the same call, run by ONNX Runtime when that is the chosen backend

The backend comes from `backend=` or $CYCLEGAN_BACKEND: "torch", "onnxruntime" or "auto" (the default: ONNX
Runtime on a CPU-only machine when the `onnx` extra is installed, PyTorch otherwise; see the README's
full-resolution section for the measurements behind this choice). Whatever goes wrong on the way to ONNX
Runtime (extra missing, export or session failure) leaves PyTorch running and says so in `model.source`.
Discriminators always stay in PyTorch, and tiled inference (cyclegan.tiled) always runs the PyTorch layers.
"""
from __future__ import annotations

import copy
import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .optional import require

BACKENDS = ("auto", "torch", "onnxruntime")
DEFAULT_BACKEND = "auto"
OPSET = 17


def export_generator(net: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Writes `net` (a generator: Nx3xHxW float32 in [-1, 1] -> Nx3xHxW) as ONNX with dynamic batch, height and
    width (input "x", output "y"). Written to a temporary name and moved into place, so a reader never sees
    half a file; an existing file at `path` is replaced (callers that must not overwrite check first).

    Uses PyTorch's TorchScript-based exporter (about 1 s for the paper's architecture, against about 20 s for the
    torch.export-based one, which is the fallback where the former is missing). Raises whatever the exporter
    raises, and MissingExtra without the `onnx` extra."""
    require("onnx", "onnx", "ONNX export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    axes = {0: "batch", 2: "height", 3: "width"}
    args = dict(input_names=["x"], output_names=["y"], dynamic_axes={"x": axes, "y": axes}, opset_version=opset)
    example = (torch.zeros(1, 3, 64, 64, device=next(net.parameters()).device),)
    was_training = net.training
    net.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(net, example, str(tmp), dynamo=False, **args)
            except (TypeError, RuntimeError, ImportError):
                require("onnxscript", "onnx", "ONNX export")
                torch.onnx.export(net, example, str(tmp), dynamo=True, **args)
        tmp.replace(path)
    finally:
        net.train(was_training)
        tmp.unlink(missing_ok=True)
    return path


class OnnxRuntimeModule(nn.Module):
    """An exported generator run by ONNX Runtime on the CPU, called like the module it replaces (NCHW float32 in
    [-1, 1] in, NCHW float32 out, any batch, height and width the network accepts). `torch_module` keeps the
    PyTorch network (tiled inference runs its layers)."""

    def __init__(self, net: nn.Module, path: str | Path, threads: int | None = None):
        super().__init__()
        ort = require("onnxruntime", "onnx", "The ONNX Runtime backend")
        path = Path(path)
        if not path.is_file():
            export_generator(net, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.torch_module = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run(None, {"x": x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(y).to(x.device)


def default_cache_dir() -> Path:
    """Where the command-line tools keep their ONNX exports: $CYCLEGAN_CACHE, else $XDG_CACHE_HOME/cyclegan/onnx,
    else ~/.cache/cyclegan/onnx (one file per set of generator weights, about the size of the weights)."""
    if os.environ.get("CYCLEGAN_CACHE"):
        return Path(os.environ["CYCLEGAN_CACHE"]) / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cyclegan" / "onnx"


def weights_key(net: nn.Module) -> str:
    """A 20-hex-digit digest of a network's state dict (names and values): the cache key of its export."""
    h = hashlib.sha1()
    for k, v in net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def with_onnxruntime(model, cache_dir: str | Path, threads: int | None = None):
    """A shallow copy of a CycleGAN whose two generators run in ONNX Runtime, exported once into cache_dir
    (file name: the weights' digest, so a changed model is exported again); the original model is unchanged.
    Raises MissingExtra without the `onnx` extra, or the exporter's or ONNX Runtime's error."""
    fast = copy.copy(model)
    fast._modules = dict(model._modules)      # a new module table: the original keeps its own generators
    for name in ("G_AB", "G_BA"):
        net = getattr(model, name)
        setattr(fast, name, OnnxRuntimeModule(net, Path(cache_dir) / f"{weights_key(net)}.onnx", threads))
    fast.source = f"{model.source} (generators run by ONNX Runtime)"
    return fast


def accelerate(model, cache_dir: str | Path, threads: int | None = None, backend: str | None = None):
    """The model with its generators on the fastest available CPU engine (see the module docstring).

    model: a CycleGAN in eval mode. cache_dir: where exports are kept between runs. threads: ONNX Runtime's
    intra-op threads (default: torch's). backend: "auto", "torch" or "onnxruntime" (default $CYCLEGAN_BACKEND,
    else "auto"). Returns the model itself (PyTorch) or a copy whose generators run in ONNX Runtime; never
    raises for a backend failure (the fallback is recorded in `model.source`), only ValueError for an unknown
    backend name."""
    backend = (backend or os.environ.get("CYCLEGAN_BACKEND") or DEFAULT_BACKEND).strip().lower()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    on_gpu = any(p.is_cuda for p in model.parameters())
    if backend == "torch" or on_gpu or torch.cuda.is_available():
        return model
    try:
        return with_onnxruntime(model, cache_dir, threads)
    except Exception as e:  # noqa: BLE001 - any failure keeps PyTorch, and says why
        if backend == "onnxruntime" or not isinstance(e, ImportError):
            model.source = f"{model.source} (ONNX Runtime unavailable, running PyTorch: {str(e).splitlines()[0][:200]})"
        return model
