"""How far the default model's generator gets on sketch -> photo when it is shown the answers.

A diagnostic for the photo2sketch benchmark, not part of the product: the same generator as G_BA of the
default recipe (ResNet, ngf 16, 6 blocks), trained for the same number of steps on the same 64x64 crops, but
*supervised*: L1 between G(sketch(x)) and x, on the true pairs of domain A's training photos (an unpaired
CycleGAN never sees such a pair). Its scores on the held-out tiles are a ceiling for what the unpaired model can
be expected to reach at this size and budget.

    python scripts/supervised_ceiling.py                      # 12064 steps, the default recipe's (about 10 min)
    python scripts/supervised_ceiling.py --steps 2262 --model models/photo2sketch
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cyclegan.evaluate import load_pairs, scores, to_signed, translate  # noqa: E402
from cyclegan.model import CycleGAN  # noqa: E402
from cyclegan.networks import build_generator, init_weights  # noqa: E402
from cyclegan.photo2sketch import get_task  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="photo2sketch")
    p.add_argument("--steps", type=int, default=12064, help="training steps (batch 1); the rate decays linearly "
                                                             "to 0 over the second half, as in the recipe")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--ngf", type=int, default=16)
    p.add_argument("--n-blocks", type=int, default=6)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", help="also score this model's B -> A generator, for comparison")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    task = get_task(args.task)
    photos = [tile for _name, _photo, tile in task.train_tiles("trainA")]
    styled = [task.transform(tile) for tile in photos]
    G = init_weights(build_generator("resnet", args.ngf, args.n_blocks))
    opt = torch.optim.Adam(G.parameters(), lr=args.lr, betas=(0.5, 0.999))
    start = time.time()
    for step in range(args.steps):
        k = rng.integers(len(photos))
        size = photos[k].shape[0]
        y, x = rng.integers(0, size - args.crop + 1, 2)
        pair = np.stack([styled[k], photos[k]])[:, y:y + args.crop, x:x + args.crop]
        if rng.random() < 0.5:
            pair = pair[:, :, ::-1]   # horizontal flip
        inp, target = to_signed(pair)
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, 2.0 * (1.0 - step / args.steps))
        loss = (G(inp[None]) - target[None]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    minutes = (time.time() - start) / 60

    test_photos, test_styled, _ = load_pairs(args.task)
    rows = [("identity (baseline)", scores(test_styled, test_photos)),
            (f"supervised G ({args.steps} steps, {minutes:.1f} min)", scores(translate(G.eval(), test_styled),
                                                                                test_photos))]
    if args.model:
        model = CycleGAN.from_pretrained(args.model).eval()
        rows.append((f"{args.model} (unpaired)", scores(translate(model.G_BA, test_styled), test_photos)))
    print(f"{task.name_B} -> {task.name_A} on {len(test_photos)} held-out tiles:\n")
    print("| model | PSNR | SSIM |\n| --- | ---: | ---: |")
    for label, s in rows:
        print(f"| {label} | {s['psnr']:.2f} | {s['ssim']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
