"""The benchmark: how close a model's translations of held-out images are to the known right answers.

    python -m cyclegan.evaluate                                   # the shipped default model on photo2sketch
    python -m cyclegan.evaluate --model models/photo2sketch --task photo2sketch
    python -m cyclegan.evaluate --model models/ablation/*         # several models: one row each
    python -m cyclegan.evaluate --save-reference                  # also write MODEL/reference.json

Beside the tiles it evaluates the held-out ordinary photos (`examples/photo/*.png` with their true sketches in
`examples/sketch/`, written by `python -m cyclegan.photo2sketch examples`), whole, one by one: G(x) against the
true sketch, F(G(x)) against x (PSNR, SSIM and the cycle L1 that the app shows), and F(y) for the true sketch y
against x, each beside the identity mapping.

The task defaults to the one whose domain names match the (first) model's, else photo2sketch. For each
direction it reports PSNR (dB) and SSIM of G(x) against the ground truth (sketch(x) for photo -> sketch, the
photo for sketch -> photo) and of the cycle F(G(x)) against x, beside the same numbers for the identity mapping
(G = F = identity) and, for the translation, a second trivial baseline: a constant mid-grey image. Outputs are rounded to 8 bits first, as the app shows them.
SSIM and PSNR come from torchmetrics (Gaussian 11x11 window, sigma 1.5; data range 1), averaged over images.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .images import tensor_to_uint8
from .photo2sketch import DEFAULT_TASK, PHOTOS, get_task, task_for

DEFAULT_MODEL = "models/photo2sketch"
DEFAULT_HELDOUT = "examples"
REFERENCE_FILE = "reference.json"


def to_unit(batch: np.ndarray) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x H x W float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float() / 255.0


def to_signed(batch: np.ndarray) -> torch.Tensor:
    return to_unit(batch) * 2.0 - 1.0


def scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Mean per-image PSNR and SSIM of uint8 N x H x W x 3 images."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    p, t = to_unit(pred), to_unit(target)
    psnr = peak_signal_noise_ratio(p, t, data_range=1.0, dim=(1, 2, 3), reduction="none")
    ssim = structural_similarity_index_measure(p, t, data_range=1.0, reduction="none")
    return {"psnr": float(psnr.mean()), "ssim": float(ssim.mean())}


@torch.no_grad()
def translate(net: torch.nn.Module, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch_size):
        y = net(to_signed(images[i:i + batch_size]))
        out.extend(tensor_to_uint8(t) for t in y)
    return np.stack(out)


def load_pairs(task_name: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The task's held-out test tiles: photos (A), their ground-truth styled versions (B), file names."""
    task = get_task(task_name)
    a, b, names = [], [], []
    for name, _photo, tile, styled in task.test_pairs():
        a.append(tile)
        b.append(styled)
        names.append(name)
        if limit and len(names) >= limit:
            break
    return np.stack(a), np.stack(b), names


def evaluate(model, task_name: str = DEFAULT_TASK, limit: int | None = None) -> dict:
    """Benchmark numbers of a CycleGAN (model.G_AB: A -> B) and of the identity mapping on a task."""
    task = get_task(task_name)
    photos, styled, names = load_pairs(task_name, limit)
    model = model.eval()
    results = {"task": task_name, "n_images": len(names), "size": list(photos.shape[1:3]),
               "photos": sorted({n.split("_y")[0] for n in names}), "directions": {}}
    for direction, x, truth, G, F in (("AtoB", photos, styled, model.G_AB, model.G_BA),
                                      ("BtoA", styled, photos, model.G_BA, model.G_AB)):
        fake = translate(G, x)
        rec = translate(F, fake)
        src, dst = (task.name_A, task.name_B) if direction == "AtoB" else (task.name_B, task.name_A)
        results["directions"][direction] = {
            "label": f"{src} -> {dst}",
            "model": {"translation": scores(fake, truth), "cycle": scores(rec, x)},
            "identity": {"translation": scores(x, truth), "cycle": scores(x, x)},
            "grey": {"translation": scores(np.full_like(truth, 128), truth)},
        }
    return results


def load_heldout(folder: str | Path = DEFAULT_HELDOUT, name_A: str = "photo", name_B: str = "sketch",
                 multiple: int = 4) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, photo, true sketch) for every FOLDER/<name_A>/NAME.png that has FOLDER/<name_B>/NAME.png.

    Both HxWx3 uint8, cropped at the bottom and right to a multiple of `multiple` (the generator's size multiple;
    at most multiple - 1 pixels are dropped). Raises FileNotFoundError if the folder holds no such pair.
    """
    folder = Path(folder)
    out = []
    for path in sorted((folder / name_A).glob("*.png")):
        truth = folder / name_B / path.name
        if not truth.is_file():
            continue
        with Image.open(path) as a, Image.open(truth) as b:
            x, y = np.array(a.convert("RGB")), np.array(b.convert("RGB"))
        if x.shape != y.shape:
            raise ValueError(f"{path} and {truth} differ in size: {x.shape[:2]} vs {y.shape[:2]}")
        h, w = (x.shape[0] // multiple) * multiple, (x.shape[1] // multiple) * multiple
        out.append((path.stem, x[:h, :w], y[:h, :w]))
    if not out:
        raise FileNotFoundError(f"no held-out pairs {folder}/{name_A}/*.png with {folder}/{name_B}/*.png")
    return out


@torch.no_grad()
def evaluate_heldout(model, folder: str | Path = DEFAULT_HELDOUT) -> dict:
    """Per-photo and mean numbers of a model on whole held-out photos (see load_heldout).

    Per photo: `translation` G(x) vs the true sketch y, `cycle` F(G(x)) vs x, `backward` F(y) vs x (PSNR dB,
    SSIM, outputs rounded to 8 bits), each with the identity mapping's `identity_*` beside it, and `cycle_l1` /
    `cycle_l1_B`: mean |x - F(G(x))| / |y - G(F(y))| over pixels and channels with pixels in [-1, 1] (the unit of
    the app's cycle error, cyclegan.explain's `cycle_l1`). `mean` averages every number over the photos.
    """
    model = model.eval()
    photos = {}
    for name, x, y in load_heldout(folder, model.name_A, model.name_B):
        xs, ys = to_signed(x[None]), to_signed(y[None])
        gx = model.G_AB(xs)
        fgx = model.G_BA(gx)
        fy = model.G_BA(ys)
        gfy = model.G_AB(fy)
        u8 = lambda t: tensor_to_uint8(t[0])[None]  # noqa: E731
        fake, rec, back = u8(gx), u8(fgx), u8(fy)
        r = {"size": [int(x.shape[1]), int(x.shape[0])]}
        for key, pred, target in (("translation", fake, y[None]), ("cycle", rec, x[None]), ("backward", back, x[None])):
            r[key] = scores(pred, target)
        r["identity_translation"] = scores(x[None], y[None])   # the photo itself as its sketch
        r["identity_backward"] = r["identity_translation"]      # the sketch itself as the photo (same pair)
        r["cycle_l1"] = float((xs - fgx).abs().mean())
        r["cycle_l1_B"] = float((ys - gfy).abs().mean())
        photos[name] = r
    mean: dict = {}
    for r in photos.values():
        for key, v in r.items():
            if isinstance(v, dict):
                for m, val in v.items():
                    mean.setdefault(key, {}).setdefault(m, []).append(val)
            elif key != "size":
                mean.setdefault(key, []).append(v)
    mean = {k: ({m: float(np.mean(vals)) for m, vals in v.items()} if isinstance(v, dict) else float(np.mean(v)))
            for k, v in mean.items()}
    return {"folder": str(folder), "photos": photos, "mean": mean}


def goals_met(r: dict) -> dict[str, bool]:
    """Issue 16's goals for one held-out photo: G beats identity on PSNR and SSIM against the true sketch,
    F(G(x)) at least 20 dB, F(y) beats identity on PSNR against the photo."""
    return {"G beats identity (PSNR and SSIM)": r["translation"]["psnr"] > r["identity_translation"]["psnr"]
            and r["translation"]["ssim"] > r["identity_translation"]["ssim"],
            "F(G(x)) >= 20 dB": r["cycle"]["psnr"] >= 20.0,
            "F(y) beats identity (PSNR)": r["backward"]["psnr"] > r["identity_backward"]["psnr"]}


def format_heldout(results: dict, kinds: dict[str, str] | None = None) -> str:
    """A Markdown table: one row per held-out photo, then the mean; model beside identity."""
    kinds = kinds or {}
    lines = ["| photo | G(x) vs sketch: PSNR / SSIM | identity | F(G(x)) vs x: PSNR / SSIM | cycle L1 | "
             "F(y) vs x: PSNR / SSIM | identity | goals met |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    rows = list(results["photos"].items()) + [("**mean**", results["mean"])]
    for name, r in rows:
        label = f"{name} ({kinds[name]})" if name in kinds else name
        goals = goals_met(r)
        lines.append(
            f"| {label} | {r['translation']['psnr']:.2f} / {r['translation']['ssim']:.3f} | "
            f"{r['identity_translation']['psnr']:.2f} / {r['identity_translation']['ssim']:.3f} | "
            f"{r['cycle']['psnr']:.2f} / {r['cycle']['ssim']:.3f} | {r['cycle_l1']:.3f} | "
            f"{r['backward']['psnr']:.2f} / {r['backward']['ssim']:.3f} | "
            f"{r['identity_backward']['psnr']:.2f} / {r['identity_backward']['ssim']:.3f} | "
            f"{sum(goals.values())}/{len(goals)} |")
    return "\n".join(lines)


def reference(results: dict, model_ref: str) -> dict:
    """The figures an app compares a new image's cycle error with (written to MODEL/reference.json)."""
    per = {n: r["cycle_l1"] for n, r in results["photos"].items()}
    per_B = {n: r["cycle_l1_B"] for n, r in results["photos"].items()}
    return {
        "what": "cycle L1 of this model on held-out ordinary photos it never saw: mean |x - F(G(x))| over pixels and "
                "channels, pixels in [-1, 1] (cyclegan.explain's cycle_l1); AtoB for photos, BtoA for their true "
                "sketches",
        "command": f"python -m cyclegan.evaluate --model {model_ref} --save-reference",
        "heldout_folder": results["folder"],
        "AtoB": {"mean": float(np.mean(list(per.values()))), "max": max(per.values()), "per_photo": per},
        "BtoA": {"mean": float(np.mean(list(per_B.values()))), "max": max(per_B.values()), "per_photo": per_B},
    }


def _fmt_psnr(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.2f}"


def format_table(results: dict, model_label: str = "model") -> str:
    """A Markdown table: one row per direction and comparison, model beside identity."""
    lines = [f"| direction | compared | {model_label} PSNR | {model_label} SSIM | identity PSNR | identity SSIM |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    task = get_task(results["task"])
    for direction, r in results["directions"].items():
        for key, what in (("translation", f"G(x) vs {task.name_B}(x)" if direction == "AtoB"
                           else f"G(y) vs x, for y = {task.name_B}(x)"),
                          ("cycle", "F(G(x)) vs x" if direction == "AtoB" else "F(G(y)) vs y")):
            m, i = r["model"][key], r["identity"][key]
            lines.append(f"| {r['label']} | {what} | {_fmt_psnr(m['psnr'])} | {m['ssim']:.3f} | "
                         f"{_fmt_psnr(i['psnr'])} | {i['ssim']:.3f} |")
    return "\n".join(lines)


def format_grey(results: dict) -> str:
    """The constant mid-grey baseline's translation scores, one line."""
    parts = [f"{r['label']} {r['grey']['translation']['psnr']:.2f} dB / SSIM {r['grey']['translation']['ssim']:.3f}"
             for r in results["directions"].values()]
    return "constant mid-grey image (a second trivial baseline): " + "; ".join(parts)


def format_comparison(rows: list[tuple[str, dict]]) -> str:
    """Several models, one row each (and the identity mapping first): translation and cycle scores."""
    first = rows[0][1]["directions"]
    a2b, b2a = first["AtoB"]["label"], first["BtoA"]["label"]
    lines = [f"| model | {a2b} PSNR | {a2b} SSIM | {b2a} PSNR | {b2a} SSIM | cycle A PSNR | cycle B PSNR |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def row(label: str, d: dict, kind: str) -> str:
        f, b = d["AtoB"][kind], d["BtoA"][kind]
        return (f"| {label} | {_fmt_psnr(f['translation']['psnr'])} | {f['translation']['ssim']:.3f} | "
                f"{_fmt_psnr(b['translation']['psnr'])} | {b['translation']['ssim']:.3f} | "
                f"{_fmt_psnr(f['cycle']['psnr'])} | {_fmt_psnr(b['cycle']['psnr'])} |")

    lines.append(row("identity (baseline)", first, "identity"))
    f, b = first["AtoB"]["grey"]["translation"], first["BtoA"]["grey"]["translation"]
    lines.append(f"| constant mid-grey (baseline) | {f['psnr']:.2f} | {f['ssim']:.3f} | {b['psnr']:.2f} | "
                 f"{b['ssim']:.3f} | - | - |")
    lines += [row(label, r["directions"], "model") for label, r in rows]
    return "\n".join(lines)


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(description="PSNR/SSIM of a CycleGAN's translations against the task's ground "
                                            "truth, beside the identity mapping.")
    p.add_argument("--model", nargs="+", default=[DEFAULT_MODEL],
                   help="model folder(s) or Hub repo id(s); several give one row each")
    p.add_argument("--task", default=None,
                   help="benchmark task (see cyclegan.photo2sketch.TASKS); default: the one matching the model's domain names")
    p.add_argument("--limit", type=int, default=None, help="only the first N test images (quick checks)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the numbers to FILE")
    p.add_argument("--heldout", default=DEFAULT_HELDOUT, metavar="DIR",
                   help="held-out photos DIR/<A>/*.png with their truths DIR/<B>/*.png; 'none' skips them")
    p.add_argument("--save-reference", action="store_true",
                   help=f"write the held-out cycle figures to MODEL/{REFERENCE_FILE} (local model folders only)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        task = get_task(args.task) if args.task else None
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2

    from .cli import sentence
    from .loading import load_model

    rows, models = [], []
    for ref in args.model:
        try:
            model = load_model(ref)   # a missing local folder is said at once; only user/name goes to the Hub
        except (OSError, ValueError) as e:
            print(f"error: cannot load {ref}: {sentence(e)}", file=sys.stderr)
            return 2
        if task is None:
            task = task_for(model.name_A, model.name_B) or get_task(DEFAULT_TASK)
        if (model.name_A, model.name_B) != (task.name_A, task.name_B):
            print(f"warning: {ref} translates {model.name_A} <-> {model.name_B}; task {task.name} is "
                  f"{task.name_A} <-> {task.name_B}; using G_AB for {task.name_A} -> {task.name_B}",
                  file=sys.stderr)
        rows.append((ref, evaluate(model, task.name, args.limit)))
        models.append(model)

    first = rows[0][1]
    print(f"\n{task.name}: {first['n_images']} held-out test images of {first['size'][0]}x{first['size'][1]} "
          f"from {', '.join(first['photos'])} (never trained on); PSNR in dB, SSIM in [0, 1], higher is better.\n")
    if len(rows) == 1:
        print(f"model: {rows[0][0]}\n")
        print(format_table(first))
        print("\n" + format_grey(first))
    else:
        print(format_comparison(rows))
    if args.heldout != "none":
        try:
            kinds = {n: p.kind for n, p in PHOTOS.items() if p.kind}
            for (ref, r), model in zip(rows, models):
                r["heldout"] = evaluate_heldout(model, args.heldout)
                print(f"\nheld-out ordinary photos ({args.heldout}; whole photos, never trained on), model {ref}; "
                      f"cycle L1 in the app's units (pixels in [-1, 1]):\n")
                print(format_heldout(r["heldout"], kinds))
                if args.save_reference:
                    if not Path(ref).is_dir():
                        print(f"error: --save-reference needs a local model folder, not {ref}", file=sys.stderr)
                        return 2
                    path = Path(ref) / REFERENCE_FILE
                    path.write_text(json.dumps(reference(r["heldout"], ref), indent=1) + "\n")
                    print(f"\nwrote {path}")
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if args.json:
        with open(args.json, "w") as f:
            json.dump({ref: r for ref, r in rows}, f, indent=2)
    return 0


def main(argv=None) -> int:
    """`python -m cyclegan.evaluate`; a missing photo package or extra is one line naming what to install."""
    from .cli import sentence
    from .photo2sketch import MissingPhotos

    try:
        return _main(argv)
    except (MissingPhotos, ImportError) as e:
        print(f"error: {sentence(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
