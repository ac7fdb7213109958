"""Does a model hide information in G(x)? The cycle error with Gaussian noise added to G(x) before F.

CycleGAN's generators can pass the cycle by coding the input's details as faint, invisible patterns in G(x)
(Chu et al., "CycleGAN, a Master of Steganography", 2017). A few grey levels of noise on G(x) then destroy the
code and the reconstruction F(G(x) + noise) falls apart, while a model that keeps the content visibly in G(x)
barely notices. This prints the app's cycle L1 (cyclegan.explain's `cycle_l1`: mean |x - F(G(x) + n)| over
pixels and channels, pixels in [-1, 1]) at each noise level, per model and image, and the jump: L1 at the
largest noise divided by L1 without noise.

    python scripts/hidden_information.py                                  # shipped models, examples/photo
    python scripts/hidden_information.py --models models/photo2sketch --noise 0 4 8 16 --per-image
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cyclegan.explain import explain  # noqa: E402
from cyclegan.model import CycleGAN  # noqa: E402


def measure(model: CycleGAN, images: list[Path], noise: list[float], direction: str = "AtoB") -> dict:
    """{image name: {noise: cycle L1}} for one model (the noise seed is cyclegan.explain's fixed one)."""
    out = {}
    for path in images:
        out[path.stem] = {float(n): explain(model, path, direction, noise=float(n)).numbers["cycle_l1"]
                          for n in noise}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=None,
                   help="model folders (default: models/photo2sketch and models/ablation/*)")
    p.add_argument("--images", nargs="+", default=None, help="images (default: examples/photo/*.png)")
    p.add_argument("--noise", nargs="+", type=float, default=[0, 4, 8, 16], help="std of the noise, grey levels")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    p.add_argument("--per-image", action="store_true", help="one row per model and image, not only the means")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = args.models or [str(ROOT / "models" / "photo2sketch")] + sorted(
        str(d) for d in (ROOT / "models" / "ablation").iterdir() if (d / "config.json").is_file())
    images = [Path(i) for i in args.images] if args.images else sorted((ROOT / "examples" / "photo").glob("*.png"))
    if not images:
        print("error: no images", file=sys.stderr)
        return 2
    noise = sorted(set(args.noise) | {0.0})
    top = noise[-1]
    head = " | ".join(f"L1 @ {n:g}" for n in noise)
    print(f"cycle L1 ({args.direction}) with Gaussian noise of std N grey levels added to G(x) before F; "
          f"{len(images)} images; jump = L1 @ {top:g} / L1 @ 0\n")
    print(f"| model | image | {head} | jump |")
    print("| --- | --- | " + " | ".join("---:" for _ in noise) + " | ---: |")
    results = {}
    for ref in models:
        try:
            model = CycleGAN.from_pretrained(ref).eval()
        except (OSError, ValueError) as e:
            print(f"error: cannot load {ref}: {e}", file=sys.stderr)
            return 2
        name = Path(ref).name if Path(ref).is_dir() else ref
        r = measure(model, images, noise, args.direction)
        results[ref] = r
        rows = list(r.items()) if args.per_image else []
        rows.append(("mean", {n: float(np.mean([v[n] for v in r.values()])) for n in noise}))
        for image, v in rows:
            cells = " | ".join(f"{v[n]:.3f}" for n in noise)
            print(f"| {name} | {image} | {cells} | {v[top] / v[0.0]:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
