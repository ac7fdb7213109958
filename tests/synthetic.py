"""Small generated image sets for the tests: domain A has warm discs on dark backgrounds, domain B the same
kind of scene with colours swapped and horizontal stripes, so a translation exists and can be learnt."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def scene(rng: np.random.Generator, size: int, domain: str) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([0.2 + 0.3 * xx, 0.15 + 0.2 * yy, 0.25 * np.ones_like(xx)], -1)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.25)
        colour = rng.uniform([0.6, 0.3, 0.0], [1.0, 0.7, 0.3])
        base[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = colour
    if domain == "B":
        base = base[..., ::-1] * 0.9 + 0.05
        base = base * (0.85 + 0.15 * (np.sin(yy * size * 0.8) > 0))[..., None]
    return Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8))


def make_unpaired(root: Path, n: int = 8, size: int = 64, seed: int = 0, test: int = 2) -> Path:
    rng = np.random.default_rng(seed)
    for phase, count in (("train", n), ("test", test)):
        for domain in "AB":
            folder = root / f"{phase}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                scene(rng, size, domain).save(folder / f"{i:03d}.png")
    return root


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description="Write a small generated unpaired data set (trainA/B, testA/B).")
    p.add_argument("out")
    p.add_argument("--n", type=int, default=16, help="training images per domain")
    p.add_argument("--size", type=int, default=64)
    a = p.parse_args()
    print(make_unpaired(Path(a.out), n=a.n, size=a.size))
