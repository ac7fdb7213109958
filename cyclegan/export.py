"""Export both generators of a CycleGAN as ONNX, checked against PyTorch, with a README on how to run them.

    python -m cyclegan.export --model models/photo2sketch --out onnx/

writes onnx/G_AB.onnx (A -> B), onnx/G_BA.onnx (B -> A) and onnx/README.md. Each graph takes "x", an Nx3xHxW
float32 batch in [-1, 1] (RGB), and returns "y" of the same shape and range; batch, height and width are
dynamic (height and width multiples of the architecture's size multiple). Each file is compared with the
PyTorch generator on three sizes before it is written (largest difference at most 1e-3 on the [-1, 1] scale,
0.13 grey level); nothing is written when a check fails, and existing files are never overwritten.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from .backends import export_generator
from .optional import MissingExtra, require
from .tiled import min_side, size_multiple

TOLERANCE = 1e-3
NAMES = ("G_AB", "G_BA")


def check_sizes(net: torch.nn.Module) -> list[tuple[int, int, int]]:
    """Three (batch, height, width) shapes the network accepts, of different sizes and aspect ratios."""
    s = max(size_multiple(net), min_side(net), 32)
    return [(1, 2 * s, 2 * s), (2, 3 * s, 2 * s), (1, 2 * s, 5 * s)]


def compare(net: torch.nn.Module, path: Path, seed: int = 0) -> list[tuple[tuple[int, int, int], float]]:
    """(shape, largest |ONNX Runtime - PyTorch|) for each of `check_sizes(net)`, on random inputs in [-1, 1]."""
    ort = require("onnxruntime", "onnx", "Checking an ONNX export")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n, h, w in check_sizes(net):
        x = torch.rand(n, 3, h, w, generator=gen) * 2 - 1
        with torch.no_grad():
            ref = net(x.to(next(net.parameters()).device)).cpu().numpy()
        got = session.run(None, {"x": x.numpy()})[0]
        out.append(((n, h, w), float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")))
    return out


def readme(model, multiple: int, checks: dict[str, list]) -> str:
    rows = "\n".join(f"| {name}.onnx | {model.direction_label(d)} | "
                     + ", ".join(f"{n}x3x{h}x{w}: {err:.1e}" for (n, h, w), err in checks[name]) + " |"
                     for name, d in zip(NAMES, ("AtoB", "BtoA")))
    return f"""# CycleGAN generators as ONNX

Exported by `python -m cyclegan.export` from {model.source}
(architecture: {model.netG}, ngf {model.ngf}, {model.n_blocks} {"residual blocks" if model.netG == "resnet" else "levels"}).

| file | direction | largest difference from PyTorch on the [-1, 1] scale |
| --- | --- | --- |
{rows}

Input "x": float32, shape (batch, 3, height, width), RGB scaled to [-1, 1]; height and width must be
multiples of {multiple} (pad by reflection and crop back otherwise). Output "y": the same shape and range.
Instance normalisation uses each image's own statistics, so batch several images only to save calls.

```python
import numpy as np
import onnxruntime as ort
from PIL import Image

session = ort.InferenceSession("G_AB.onnx", providers=["CPUExecutionProvider"])
img = Image.open("input.jpg").convert("RGB")
w, h = img.size
x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
ph, pw = -h % {multiple}, -w % {multiple}
x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
y = session.run(None, {{"x": x}})[0][0, :, :h, :w]
Image.fromarray(((y.transpose(1, 2, 0) + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)).save("output.png")
```
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cyclegan.export", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("CYCLEGAN_MODEL", "").strip() or None,
                    help="a save_pretrained folder (e.g. models/photo2sketch) or a Hub repo id[@revision] "
                         "(default: $CYCLEGAN_MODEL)")
    ap.add_argument("--out", required=True, help="output folder (created; existing files are never replaced)")
    args = ap.parse_args(argv)

    from .cli import out_folder_problem, sentence
    from .loading import load_model
    problem = out_folder_problem(args.out)
    if problem:
        print(sentence(problem), file=sys.stderr)
        return 2
    out = Path(args.out)
    targets = [out / f"{name}.onnx" for name in NAMES] + [out / "README.md"]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        print(f"refusing to overwrite {', '.join(existing)}: choose another --out or remove them",
              file=sys.stderr)
        return 2
    spec = args.model
    if not spec:
        print("no model: pass --model (a folder such as models/photo2sketch, or a Hub repo id) or set "
              "CYCLEGAN_MODEL", file=sys.stderr)
        return 2
    try:
        require("onnx", "onnx", "ONNX export")
        require("onnxruntime", "onnx", "Checking an ONNX export")
        model = load_model(spec)
    except (ValueError, MissingExtra) as e:
        print(e, file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    checks: dict[str, list] = {}
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as tmp:
        for name in NAMES:
            net = getattr(model, name).eval()
            path = export_generator(net, Path(tmp) / f"{name}.onnx")
            checks[name] = compare(net, path)
            for (n, h, w), err in checks[name]:
                print(f"{name}.onnx  {n}x3x{h}x{w}: largest difference from PyTorch {err:.2e}", file=sys.stderr)
            worst = max(err for _, err in checks[name])
            if not worst <= TOLERANCE:
                print(f"{name}.onnx differs from PyTorch by {worst:.2e} (> {TOLERANCE:g}); nothing written",
                      file=sys.stderr)
                return 1
        (Path(tmp) / "README.md").write_text(readme(model, size_multiple(model.G_AB), checks))
        for t in targets:
            try:
                os.link(Path(tmp) / t.name, t)          # fails, instead of replacing, if t appeared meanwhile
            except FileExistsError:
                print(f"refusing to overwrite {t}, which appeared during the export", file=sys.stderr)
                return 2
    print(f"wrote {', '.join(str(t) for t in targets)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
