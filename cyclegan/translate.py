"""Translate files or folders from the command line, with the app's inference path (`cyclegan.explain`).

    python -m cyclegan.translate --model models/default --direction AtoB photos/ one.jpg --out out/
    python -m cyclegan.translate --model user/repo@main --direction BtoA in/ --out out/ --reconstructions --heatmaps

For each input NAME it writes NAME.png (G(x)); with --reconstructions also NAME_rec.png (F(G(x))) and
NAME_idt.png (F(x)); with --heatmaps NAME_cycle_error.png and NAME_identity_error.png (the app's fixed colour
scale) and, when the checkpoint has discriminators, NAME_realness.png. Images inside a folder keep their
relative paths under --out. Unreadable files are reported and skipped; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from .explain import DEFAULT_MAX_SIDE, default_model_path, explain_steps, load_model
from .images import DEFAULT_MAX_PIXELS, ImageError, list_images


def collect(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(file, output stem relative to --out) for every input file and every image inside input folders."""
    items = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            items += [(f, f.relative_to(p).with_suffix("")) for f in list_images(p)]
        else:
            items.append((p, Path(p.stem)))
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cyclegan.translate", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    ap.add_argument("--model", default=None, help="a save_pretrained folder or a Hub repo id[@revision] "
                    "(default: $CYCLEGAN_MODEL, else the embedded default under models/)")
    ap.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                    help="resize so the longest side is at most this (0: keep the size)")
    ap.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images")
    ap.add_argument("--reconstructions", action="store_true", help="also write F(G(x)) and F(x)")
    ap.add_argument("--heatmaps", action="store_true", help="also write the cycle/identity error and realness maps")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = args.model or default_model_path()
    if spec is None:
        print("no model: pass --model, set CYCLEGAN_MODEL or put a model under models/", file=sys.stderr)
        return 2
    try:
        model = load_model(spec)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    items = collect(args.inputs)
    if not items:
        print("no images found in the inputs", file=sys.stderr)
        return 2
    out = Path(args.out)
    full = args.reconstructions or args.heatmaps
    failed = 0
    print(f"{model.direction_label(args.direction)} with {model.source}", file=sys.stderr)
    for path, stem in tqdm(items, unit="img", dynamic_ncols=True, file=sys.stderr):
        try:
            ex = None
            for ex in explain_steps(model, path, args.direction, max_side=args.max_side or None,
                                    max_pixels=args.max_pixels, full=full):
                pass
        except ImageError as e:
            tqdm.write(f"skipped: {e}", file=sys.stderr)
            failed += 1
            continue
        panels = {"": ex.fake}
        if args.reconstructions:
            panels.update({"_rec": ex.rec, "_idt": ex.idt})
        if args.heatmaps:
            panels.update({"_cycle_error": ex.cycle_heat, "_identity_error": ex.identity_heat})
            if ex.realness_heat is not None:
                panels["_realness"] = ex.realness_heat
        for suffix, arr in panels.items():
            target = out / stem.parent / f"{stem.name}{suffix}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(target)
    done = len(items) - failed
    print(f"wrote {done} image(s) to {out}" + (f"; {failed} skipped" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
