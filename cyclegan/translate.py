"""Translate files or folders from the command line, with the app's inference path (`cyclegan.explain`).

    python -m cyclegan.translate --model models/default --direction AtoB photos/ one.jpg --out out/
    python -m cyclegan.translate --model user/repo@main --direction BtoA in/ --out out/ --reconstructions --heatmaps

For each input NAME it writes NAME.png (G(x)); with --reconstructions also NAME_rec.png (F(G(x))) and
NAME_idt.png (F(x)); with --heatmaps NAME_cycle_error.png and NAME_identity_error.png (the app's fixed colour
scale) and, when the checkpoint has discriminators, NAME_realness.png. Images inside a folder keep their
relative paths under --out. Any image size works: inputs are padded to what the generator accepts (multiples
of 4 for ResNet generators, of 2**n for a U-Net with n halvings) and cropped back.

Files are safe:
- An input file is never written over, not even with --overwrite: if an output name would be an input file
  (e.g. --out is the input folder and an input is a PNG), nothing is written and the exit status is 2.
- Inputs whose outputs would share a name (cat.jpg and cat.png, photo.avif and photo.webp) keep their
  extension in the output name: cat_jpg.png, cat_png.png; if that is not enough (a/cat.png and b/cat.png given
  as files, or names that differ only in case), they are numbered in input order: cat_png-1.png, cat_png-2.png.
  Other names stay NAME.png, and a note says how many outputs were renamed.
- An output file that already exists is not replaced unless --overwrite is given (nothing is written, exit 2).
- Outputs are written under a temporary name and renamed, so an interrupted run leaves no half-written file.
- Images inside --out are not read as inputs when --out lies inside an input folder.

One input that fails (unreadable, too large, out of memory on the CPU or GPU, anything else) is reported on one
line with its file name and a hint, and the others are still translated. The last line says how many files
were written and how many inputs failed. Exit status: 0 all done, 1 some inputs failed, 2 nothing was done
(bad options, no model, no inputs, or outputs that would replace files).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # before torch is imported: Ctrl-C at any point ends with one line
    from .cli import quiet_interrupts
    quiet_interrupts("python -m cyclegan.translate")

import torch
from PIL import Image
from tqdm import tqdm

from .backends import BACKENDS, accelerate, default_cache_dir
from .cli import INTERRUPTED, out_folder_problem, sentence
from .explain import DEFAULT_MAX_SIDE, explain_steps
from .images import DEFAULT_MAX_PIXELS, ImageError, ImageTooLarge, list_images, png_bytes, write_atomic
from .loading import load_model
from .render import heatmap
from .tiled import DEFAULT_TILE, MIN_TILE, TILED_ABOVE_MP, explain_large

EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING_DONE = 0, 1, 2


class PlanError(ValueError):
    """The run cannot start without losing a file or ignoring an input; the message says which and what to do."""


@dataclass
class Item:
    source: Path          # the input file
    stem: Path            # its output name without suffix and extension, relative to --out
    qualified: Path       # the same with the input's extension kept (cat.jpg -> cat_jpg), used on collisions


def collect(inputs: list[str], out: Path) -> list[Item]:
    """Every input file and every image inside input folders (not those inside `out`), each once."""
    items, seen = [], set()
    out_resolved = out.resolve()
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            skip = out_resolved if out_resolved != p.resolve() and out_resolved.is_relative_to(p.resolve()) else None
            files = [(f, f.relative_to(p)) for f in list_images(p)
                     if skip is None or not f.resolve().is_relative_to(skip)]
        else:
            files = [(p, Path(p.name))]
        for f, rel in files:
            key = f.resolve()
            if key in seen:
                continue
            seen.add(key)
            ext = rel.suffix.lstrip(".").lower()
            stem = rel.with_suffix("")
            items.append(Item(f, stem, stem.with_name(f"{stem.name}_{ext}") if ext else stem))
    return items


def plan(items: list[Item], out: Path, suffixes: list[str], overwrite: bool) -> list[list[Path]]:
    """The output files of each item (one per suffix), distinct from each other and from every input.
    Raises PlanError before anything is written."""
    def outputs(stem: Path) -> list[Path]:
        return [out / stem.parent / f"{stem.name}{suffix}.png" for suffix in suffixes]

    def key(path: Path) -> str:          # as a case-insensitive file system (macOS, Windows) would compare them
        return os.path.normcase(str(path)).casefold()

    def collisions(names: list[list[Path]]) -> set[int]:
        owner: dict[str, int] = {}
        clash = set()
        for i, paths in enumerate(names):
            for path in paths:
                j = owner.setdefault(key(path), i)
                if j != i:
                    clash |= {i, j}
        return clash

    # 1. NAME; 2. inputs that clash keep their extension (NAME_ext); 3. inputs that still clash (the same name and
    # extension from two folders given as files, or names that differ only in case) are numbered in input order
    stems = [it.stem for it in items]
    for _ in range(2):
        clash = collisions([outputs(stem) for stem in stems])
        stems = [items[i].qualified if i in clash else stem for i, stem in enumerate(stems)]
    clash = sorted(collisions([outputs(stem) for stem in stems]))
    for n, i in enumerate(clash, 1):
        stems[i] = stems[i].with_name(f"{stems[i].name}-{n}")
    names = [outputs(stem) for stem in stems]
    clash = sorted(collisions(names))
    if clash:
        listed = ", ".join(str(items[i].source) for i in clash[:6])
        raise PlanError(f"inputs whose outputs would share a name even with their extensions kept and numbered: "
                        f"{listed}. Rename them or translate them into separate --out folders. Nothing was written.")

    inputs = {_identity(it.source) for it in items} - {None}
    replaced_inputs, existing = [], []
    for paths in names:
        for path in paths:
            ident = _identity(path)
            if ident is None:
                continue
            (replaced_inputs if ident in inputs else existing).append(path)
    if replaced_inputs:
        listed = ", ".join(str(p) for p in replaced_inputs[:4]) + (" ..." if len(replaced_inputs) > 4 else "")
        raise PlanError(f"the output would replace input file(s) {listed}: choose an --out folder that holds no "
                        f"inputs. Input files are never written over, not even with --overwrite. Nothing was written.")
    if existing and not overwrite:
        listed = ", ".join(str(p) for p in existing[:4]) + (" ..." if len(existing) > 4 else "")
        raise PlanError(f"{len(existing)} output file(s) already exist: {listed}. Pass --overwrite to replace them, "
                        f"or choose another --out. Nothing was written.")
    return names


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file (the same for a hard link, a symlink or another spelling), else None."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def write_png(image, target: Path) -> None:
    """Writes an HxWx3 uint8 array as a PNG under a temporary name, then renames it into place."""
    write_atomic(target, png_bytes(image))


class OutputError(OSError):
    """An output file that could not be written (a full disk, a read-only folder); not the input's fault."""

    def __init__(self, target: Path, cause: OSError):
        super().__init__(cause.errno, f"could not write {target} ({cause.strerror or cause}): check that --out is "
                                      f"writable and has free space")


def is_out_of_memory(e: BaseException) -> bool:
    """MemoryError, torch.OutOfMemoryError (CUDA, MPS), the CPU allocator's RuntimeError, or ONNX Runtime's
    allocation failure (its own exception class, "[ONNXRuntimeError] ... Failed to allocate memory")."""
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        return True
    msg = str(e).lower()
    if "onnxruntimeerror" in msg:
        return "failed to allocate" in msg or "bfcarena::allocate" in msg
    return isinstance(e, RuntimeError) and any(s in msg for s in ("can't allocate memory", "out of memory",
                                                                  "not enough memory", "failed to allocate"))


def failure_message(e: BaseException, path: Path, max_side: int, device: str) -> str:
    """One line for a failed input: its file name, what went wrong and, where there is one, what to try."""
    if isinstance(e, OutputError):
        return f"{path}: {e.strerror}"
    if isinstance(e, ImageError):
        msg = str(e) if str(path) in str(e) else f"{path}: {e}"
        return msg + (": raise --max-pixels to allow it" if isinstance(e, ImageTooLarge) else "")
    if is_out_of_memory(e):
        try:
            with Image.open(path) as img:
                w, h = img.size
            size = f" at {w}x{h}" + (f" (resized to at most {max_side} pixels a side)" if max_side and
                                    max(w, h) > max_side else "")
            side = min(max(w, h), max_side) if max_side else max(w, h)
        except Exception:
            size, side = "", max_side or 2048
        hint = f"try a smaller --max-side, e.g. --max-side {max(64, side // 2 // 64 * 64)}"
        if device.startswith("cuda"):
            hint += ", or --device cpu"
        where = "on the GPU" if device.startswith("cuda") else "in RAM"
        return f"{path}: out of memory {where}{size}: {hint}"
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return f"{path}: failed ({type(e).__name__}: {first})" if first else f"{path}: failed ({type(e).__name__})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = __doc__.split("\n\n")
    ap = argparse.ArgumentParser(prog="python -m cyclegan.translate", description=doc[0],
                                 epilog="\n\n".join(doc[2:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    ap.add_argument("--model", default=os.environ.get("CYCLEGAN_MODEL", "").strip() or None,
                    help="a save_pretrained folder (e.g. models/default in a checkout) or a Hub repo "
                         "id[@revision] (default: $CYCLEGAN_MODEL)")
    ap.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace output files that already exist (input files are never replaced)")
    ap.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                    help=f"resize so the longest side is at most this many pixels (default {DEFAULT_MAX_SIDE}; "
                         f"0: keep the size)")
    ap.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                    help=f"refuse images with more pixels than this before decoding them (default "
                         f"{DEFAULT_MAX_PIXELS:,})")
    ap.add_argument("--reconstructions", action="store_true", help="also write F(G(x)) and F(x)")
    ap.add_argument("--heatmaps", action="store_true", help="also write the cycle/identity error and realness maps")
    ap.add_argument("--tile", type=int, default=None,
                    help=f"tile side in pixels for tiled inference, which gives the whole-image result in bounded "
                         f"memory (default: tiles of {DEFAULT_TILE} for images over {TILED_ABOVE_MP:g} megapixels "
                         f"after --max-side; 0: never tile)")
    ap.add_argument("--backend", default="auto", choices=BACKENDS,
                    help="engine for whole-image passes on the CPU: auto (ONNX Runtime when installed, e.g. by the "
                         "app or onnx extra, else PyTorch), torch or onnxruntime; exports are cached in "
                         "$CYCLEGAN_CACHE/onnx or ~/.cache/cyclegan/onnx; tiled inference always runs PyTorch's "
                         "layers")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads on the CPU (0: torch's default)")
    args = ap.parse_args(argv)
    if args.max_side < 0:
        ap.error("--max-side must be 0 (keep the size) or a positive number of pixels.")
    if args.max_pixels < 1:
        ap.error("--max-pixels must be a positive number of pixels.")
    if args.tile is not None and 0 < args.tile < MIN_TILE:
        ap.error(f"--tile must be 0 (never tile) or at least {MIN_TILE} pixels.")
    if args.threads < 0:
        ap.error("--threads must be 0 (torch's default) or positive.")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError):
        ap.error(f"--device {args.device!r} is not a device name: use cpu, cuda or cuda:N.")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: no CUDA device is available here (use --device cpu).")
    if device.type != "cpu" and args.backend == "onnxruntime":
        ap.error(f"--backend onnxruntime runs on the CPU only: use --device cpu, or --backend torch on "
                 f"{args.device}.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    err = sys.stderr

    def say(message: str) -> None:
        print(sentence(message), file=err)

    if not args.model:
        say("no model: pass --model (a folder such as models/default, or a Hub repo id) or set CYCLEGAN_MODEL")
        return EXIT_NOTHING_DONE
    problem = out_folder_problem(args.out)
    if problem:
        say(problem)
        return EXIT_NOTHING_DONE
    try:
        model = load_model(args.model).to(args.device)
    except ValueError as e:  # cyclegan.loading's one-line ModelLoadError
        say(str(e))
        return EXIT_NOTHING_DONE
    except (RuntimeError, OSError) as e:  # e.g. a device that exists in name only
        say(f"could not put the model on {args.device}: {type(e).__name__}: "
            f"{(str(e).strip().splitlines() or [''])[0][:300]}")
        return EXIT_NOTHING_DONE
    if args.device == "cpu" and args.backend != "torch":
        model = accelerate(model, default_cache_dir(), args.threads or None, backend=args.backend)
    out = Path(args.out)
    items = collect(args.inputs, out)
    if not items:
        missing = [raw for raw in args.inputs if not os.path.exists(raw)]
        say("no images found in the inputs" + (f" ({', '.join(missing[:4])}: no such file or folder)"
                                                 if missing else ""))
        return EXIT_NOTHING_DONE
    suffixes = [""]
    if args.reconstructions:
        suffixes += ["_rec", "_idt"]
    if args.heatmaps:
        suffixes += ["_cycle_error", "_identity_error"]
        if model.discriminator_of_target(args.direction) is not None:
            suffixes.append("_realness")
        else:
            say("--heatmaps: no realness maps, this model has no discriminators (only the error maps are written)")
    try:
        targets = plan(items, out, suffixes, args.overwrite)
    except PlanError as e:
        say(str(e))
        return EXIT_NOTHING_DONE

    renamed = [it for it, paths in zip(items, targets) if paths[0].name != f"{it.stem.name}.png"]
    if renamed:
        say(f"note: {len(renamed)} input(s) share an output name with another input, so their outputs keep the "
            f"extension (and a number if needed): e.g. {renamed[0].source} -> "
            f"{targets[items.index(renamed[0])][0].name}")
    print(f"{model.direction_label(args.direction)} with {model.source}", file=err)
    failed: list[Path] = []
    written = [0]
    try:
        run(model, items, targets, args, failed, written)
    except KeyboardInterrupt:
        say(f"interrupted: wrote {written[0]} file(s) to {out} before stopping; the file being written when it "
            f"stopped was discarded")
        return INTERRUPTED
    done = len(items) - len(failed)
    summary = f"wrote {written[0]} file(s) for {done} of {len(items)} input(s) to {out}"
    if failed:
        summary += f"; {len(failed)} failed: " + ", ".join(str(p) for p in failed[:5]) + (
            " ..." if len(failed) > 5 else "")
    say(summary)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def run(model, items: list[Item], targets: list[list[Path]], args: argparse.Namespace, failed: list[Path],
        written: list[int]) -> None:
    """Translates each item into its planned files; a failed item is reported, appended to `failed`, and the
    loop goes on. written[0] counts the files written."""
    err = sys.stderr
    full = args.reconstructions or args.heatmaps
    for item, paths in zip(tqdm(items, unit="img", dynamic_ncols=True, file=err), targets):
        ex = None  # set before anything can fail: the handler below frees it
        try:
            # photos over TILED_ABOVE_MP (or any, with --tile N): tiled inference, same results, bounded memory
            ex = explain_large(model, item.source, args.direction, max_side=args.max_side or None,
                               max_pixels=args.max_pixels, tile=args.tile, full=full)
            if ex is None:
                for ex in explain_steps(model, item.source, args.direction, max_side=args.max_side or None,
                                        max_pixels=args.max_pixels, full=full):
                    pass
            panels = [ex.fake]
            if args.reconstructions:
                panels += [ex.rec, ex.idt]
            if args.heatmaps:
                panels += [heatmap(ex, "cycle_error"), heatmap(ex, "identity_error")]
                if ex.realness is not None:
                    panels.append(heatmap(ex, "realness"))
            for image, target in zip(panels, paths):
                try:
                    write_png(image, target)
                except OSError as e:
                    raise OutputError(target, e) from None
                written[0] += 1
        except Exception as e:  # one input's failure, whatever it is, must not stop the others
            del ex
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
            tqdm.write(sentence(f"failed: {failure_message(e, item.source, args.max_side, args.device)}"),
                       file=err)
            failed.append(item.source)


if __name__ == "__main__":
    sys.exit(main())
