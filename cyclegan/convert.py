"""Turn two released single-direction generators of the reference implementation into one CycleGAN.

    python -m cyclegan.convert --a2b horse2zebra.pth --b2a zebra2horse.pth --names horse zebra --out DIR
    python -m cyclegan.convert --download horse2zebra --out DIR        # fetches both files first (online)

The files are read with `torch.load(weights_only=True)`: plain tensors only, nothing is unpickled that could
run code. ngf and the number of residual blocks come from the tensors. Old (2018) files' instance-norm
running statistics are dropped (the norm has none), a DataParallel `module.` prefix is stripped, and a
dropout-trained file's second block conv (`conv_block.6`) is mapped to `conv_block.5` (dropout does nothing at
inference, so the outputs are unchanged). Anything else that does not match is an error that names it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

if __name__ == "__main__":  # before torch is imported: Ctrl-C at any point ends with one line
    from .cli import quiet_interrupts
    quiet_interrupts("python -m cyclegan.convert")

import torch

from .cli import fail, out_folder_problem

from .networks import ResnetGenerator

URL_PATTERN = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{name}.pth"
RELEASED = ["apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
            "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh", "sat2map",
            "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label",
            "facades_label2photo", "iphone2dslr_flower"]
# A -> B file, B -> A file, name of A, name of B: the pairs trained together (a full cycle).
PAIRS = [("horse2zebra", "zebra2horse", "horse", "zebra"),
         ("apple2orange", "orange2apple", "apple", "orange"),
         ("summer2winter_yosemite", "winter2summer_yosemite", "summer", "winter"),
         ("sat2map", "map2sat", "satellite", "map"),
         ("cityscapes_photo2label", "cityscapes_label2photo", "photo", "label"),
         ("facades_photo2label", "facades_label2photo", "photo", "label")]
SINGLE = [n for n in RELEASED if not any(n in p[:2] for p in PAIRS)]
STATS_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")
FIRST_BLOCK = 10  # index of the first residual block in the reference nn.Sequential


OUTPUT_FILES = ("config.json", "model.safetensors", "conversion.json", "README.md")   # what save_converted writes


class ConversionError(ValueError):
    """A file that is not a reference ResNet generator state dict, with the reason."""


def check_file(path: str | Path) -> None:
    """Raises ConversionError when `path` is missing, a folder or empty."""
    if not Path(path).is_file():
        raise ConversionError(f"{path}: " + ("a folder, not a .pth file" if Path(path).is_dir() else "no such file"))
    if Path(path).stat().st_size == 0:
        raise ConversionError(f"{path}: the file is empty")


def load_reference_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict of tensors, loaded without unpickling arbitrary objects."""
    check_file(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses classes, functions and other objects
        raise ConversionError(f"{path}: not a plain state dict of tensors; refusing to unpickle it "
                              f"(torch.load weights_only=True said: {' '.join(str(e).split())[:300]})") from None
    if not isinstance(obj, dict) or not obj:
        raise ConversionError(f"{path}: expected a state dict (name -> tensor), found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ConversionError(f"{path}: entries that are not tensors: {', '.join(map(str, bad[:5]))}")
    return dict(obj)


def normalize(state: dict[str, torch.Tensor], source: str = "state dict") -> tuple[dict[str, torch.Tensor], dict]:
    """The reference state dict in this package's `ResnetGenerator` names, plus what was inferred and changed:
    {"ngf", "n_blocks", "dropped": [...], "prefix_stripped": bool, "dropout_layout": bool}."""
    info = {"ngf": None, "n_blocks": None, "dropped": [], "prefix_stripped": False, "dropout_layout": False}
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}  # normalised name -> name in the file (for error messages)
    block_convs: dict[int, set[int]] = {}
    for name, t in state.items():
        key = name
        if key.startswith("module."):
            key, info["prefix_stripped"] = key[len("module."):], True
        if key.endswith(STATS_SUFFIXES):
            info["dropped"].append(name)
            continue
        m = re.fullmatch(r"model\.(\d+)\.conv_block\.(\d+)\.(weight|bias)", key)
        if m:
            block_convs.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
        if key in out:
            raise ConversionError(f"{source}: {name} appears twice (with and without the 'module.' prefix)")
        out[key], origin[key] = t, name

    for block, convs in sorted(block_convs.items()):
        if convs == {1, 6}:
            info["dropout_layout"] = True
            for p in ("weight", "bias"):
                old, new = f"model.{block}.conv_block.6.{p}", f"model.{block}.conv_block.5.{p}"
                if old in out:
                    out[new], origin[new] = out.pop(old), origin.pop(old)
        elif convs != {1, 5}:
            raise ConversionError(
                f"{source}: residual block model.{block} has convs at conv_block.{sorted(convs)}; a reference "
                f"block has them at conv_block.1 and .5 (or .1 and .6 when trained with dropout)")
    layouts = {frozenset(c) for c in block_convs.values()}
    if len(layouts) > 1:
        raise ConversionError(f"{source}: some residual blocks have the dropout layout (conv_block.6) and some do "
                              f"not (conv_block.5); a reference generator uses one layout throughout")

    first = out.get("model.1.weight")
    if first is None or first.dim() != 4 or tuple(first.shape[1:]) != (3, 7, 7):
        found = "missing" if first is None else f"shape {tuple(first.shape)}"
        raise ConversionError(f"{source}: model.1.weight ({found}) should be the first 7x7 conv of a 3-channel "
                              f"ResNet generator, shape (ngf, 3, 7, 7): not a reference resnet generator")
    info["ngf"] = int(first.shape[0])
    blocks = sorted(block_convs)
    info["n_blocks"] = len(blocks)
    if blocks != list(range(FIRST_BLOCK, FIRST_BLOCK + len(blocks))):
        raise ConversionError(f"{source}: residual blocks at model.{blocks}; expected consecutive indices from "
                              f"model.{FIRST_BLOCK}")

    from .model import state_dict_mismatch

    expected = ResnetGenerator(ngf=info["ngf"], n_blocks=info["n_blocks"]).state_dict()
    problems = state_dict_mismatch(expected, out, shown_as=origin, limit=None)
    not_float = [origin[k] for k in out if k in expected and not out[k].is_floating_point()]
    if not_float:
        problems.append("non-floating-point tensors: " + ", ".join(not_float))
    if problems:
        raise ConversionError(f"{source} does not match a reference ResNet generator with ngf {info['ngf']} and "
                              f"{info['n_blocks']} blocks: " + " | ".join(problems))
    return {k: out[k].float().contiguous() for k in expected}, info


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_pair(a2b: str | Path, b2a: str | Path, name_A: str, name_B: str):
    """(CycleGAN with G_AB from `a2b` and G_BA from `b2a`, conversion record for the card)."""
    from .model import CycleGAN

    sd_ab, info_ab = normalize(load_reference_file(a2b), str(a2b))
    sd_ba, info_ba = normalize(load_reference_file(b2a), str(b2a))
    for key in ("ngf", "n_blocks"):
        if info_ab[key] != info_ba[key]:
            raise ConversionError(f"the two files differ in {key}: {a2b} has {info_ab[key]}, {b2a} has "
                                  f"{info_ba[key]}; one CycleGAN needs one architecture for both directions")
    model = CycleGAN(name_A=name_A, name_B=name_B, netG="resnet", ngf=info_ab["ngf"], n_blocks=info_ab["n_blocks"],
                     use_dropout=False)
    model.load_weights({**{f"G_AB.{k}": v for k, v in sd_ab.items()}, **{f"G_BA.{k}": v for k, v in sd_ba.items()}})
    model.source = f"converted from {Path(a2b).name} + {Path(b2a).name}"
    notes = []
    for path, info in ((a2b, info_ab), (b2a, info_ba)):
        n = Path(path).name
        if info["dropped"]:
            notes.append(f"{n}: dropped {len(info['dropped'])} instance-norm running-statistics entries (2018 file; "
                         "the norm uses per-image statistics and has none)")
        if info["prefix_stripped"]:
            notes.append(f"{n}: stripped the DataParallel 'module.' prefix")
        if info["dropout_layout"]:
            notes.append(f"{n}: trained with dropout; its second block convs (conv_block.6) were mapped to "
                         "conv_block.5 (dropout is inactive at inference, so outputs are unchanged)")
    record = {"files": {"G_AB": {"name": Path(a2b).name, "sha256": sha256(a2b)},
                        "G_BA": {"name": Path(b2a).name, "sha256": sha256(b2a)}},
              "ngf": info_ab["ngf"], "n_blocks": info_ab["n_blocks"], "notes": notes,
              "url_pattern": URL_PATTERN}
    return model.eval(), record


def save_converted(model, record: dict, out: str | Path, repo_id: str | None = None) -> Path:
    """config.json, model.safetensors, conversion.json and the model card in OUT (the card's loading example names
    `repo_id`, default OUT)."""
    from .card import model_card, write_card

    out = Path(out)
    model.save_pretrained(out)
    (out / "conversion.json").write_text(json.dumps(record, indent=2))
    n_params = sum(p.numel() for p in model.parameters())
    write_card(out, model_card(model.config.to_dict(), repo_id=repo_id, local_path=None if repo_id else out,
                               n_params=n_params, converted=record))
    return out


def download(name: str, folder: str | Path) -> Path:
    """NAME.pth from the reference implementation's server (or $CYCLEGAN_PRETRAINED_URL, a mirror with the same
    layout) into FOLDER, unless it is already there."""
    if name not in RELEASED:
        raise ConversionError(f"{name!r} is not one of the released models: {', '.join(RELEASED)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pth"
    if path.is_file():
        print(f"using {path} (already downloaded)")
        return path
    from .released import ReleasedModelError, fetch

    print(f"downloading {name}.pth")
    try:
        return fetch(name, folder)  # time and size limits, partial files removed
    except ReleasedModelError as e:
        raise ConversionError(str(e)) from None


def pair_of(name: str) -> tuple[str, str, str, str]:
    """(a2b name, b2a name, name A, name B) for a released model that has a partner."""
    if name not in RELEASED:
        raise ConversionError(f"{name!r} is not one of the released models: {', '.join(RELEASED)}")
    for ab, ba, a, b in PAIRS:
        if name == ab:
            return ab, ba, a, b
        if name == ba:
            return ba, ab, b, a
    raise ConversionError(f"{name!r} has no released partner (full-cycle pairs: "
                          + ", ".join(f"{p[0]} + {p[1]}" for p in PAIRS) + "); download it yourself and give "
                          "both directions with --a2b and --b2a")


def names_from_files(a2b: str, b2a: str) -> tuple[str, str] | None:
    m = re.fullmatch(r"(?:\w+_)?([a-z]+)2([a-z]+)(?:_\w+)?", Path(a2b).stem)
    return (m.group(1), m.group(2)) if m else None


EPILOG = ("released generators of the reference implementation (one direction per file):\n  "
          + "\n  ".join(", ".join(RELEASED[i:i + 4]) for i in range(0, len(RELEASED), 4))
          + f"\n\ndownload them from:\n  {URL_PATTERN.format(name='NAME')}\n"
          "  e.g. curl -LO " + URL_PATTERN.format(name="horse2zebra") + "\n\n"
          "pairs that make a full cycle (convert them together):\n  "
          + "\n  ".join(f"{ab} + {ba}   (--names {a} {b})" for ab, ba, a, b in PAIRS)
          + "\n\nsingle direction, not part of a released pair: " + ", ".join(SINGLE)
          + "\n  any two files still convert with --a2b/--b2a (e.g. style_monet + monet2photo), but only the pairs above "
          "are listed as the two directions of one training"
          + "\n\nexample:\n  python -m cyclegan.convert --a2b horse2zebra.pth --b2a zebra2horse.pth "
          "--names horse zebra --out converted/horse2zebra\n  python -m cyclegan.convert --download horse2zebra "
          "--out converted/horse2zebra      # online: fetches both files")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cyclegan.convert", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Turn a pair of the reference implementation's released single-direction "
                                            "ResNet generators (.pth) into one CycleGAN (safetensors) that the app "
                                            "shows with its full cycle.", epilog=EPILOG)
    p.add_argument("--a2b", metavar="FILE.pth", help="generator A -> B, e.g. horse2zebra.pth")
    p.add_argument("--b2a", metavar="FILE.pth", help="generator B -> A, e.g. zebra2horse.pth")
    p.add_argument("--names", nargs=2, metavar=("A", "B"), help="domain names (default: from the file names)")
    p.add_argument("--download", metavar="NAME", help="fetch NAME.pth and its partner first (needs the internet)")
    p.add_argument("--download-dir", default=str(Path.home() / ".cache" / "cyclegan" / "pretrained_models"),
                   help="where --download puts the files")
    p.add_argument("--out", required=True, help="output folder: config.json, model.safetensors, README.md")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    p.add_argument("--push-to-hub", metavar="USER/REPO", default=None, help="also publish OUT there")
    p.add_argument("--hub-private", action="store_true", help="create the Hub repo as private")
    args = p.parse_args(argv)

    problem = out_folder_problem(args.out)
    existing = [n for n in OUTPUT_FILES if (Path(args.out) / n).exists()] if problem is None else []
    if existing and not args.overwrite:
        problem = (f"--out {args.out} already holds {', '.join(existing)}: pass --overwrite to replace that model, or "
                   f"choose another --out. Nothing was written")
    if problem:
        return fail(problem, 2)
    try:
        if args.download:
            if args.a2b or args.b2a:
                p.error("give either --download or --a2b/--b2a.")
            ab, ba, a, b = pair_of(args.download)
            args.a2b, args.b2a = str(download(ab, args.download_dir)), str(download(ba, args.download_dir))
            args.names = args.names or [a, b]
        if not (args.a2b and args.b2a):
            p.error("give --a2b and --b2a (or --download NAME).")
        for path in (args.a2b, args.b2a):
            check_file(path)  # a missing file is named before the domain names are asked for
        names = args.names or names_from_files(args.a2b, args.b2a)
        if not names:
            p.error("cannot tell the domain names from the file names: give --names A B.")
        model, record = convert_pair(args.a2b, args.b2a, *names)
    except ConversionError as e:
        return fail(e, 2)
    out = save_converted(model, record, args.out)
    print(f"converted: {model.direction_label('AtoB')} from {Path(args.a2b).name}, "
          f"{model.direction_label('BtoA')} from {Path(args.b2a).name}; ngf {record['ngf']}, "
          f"{record['n_blocks']} residual blocks -> {out}")
    for note in record["notes"]:
        print(f"note: {note}")
    if args.push_to_hub:
        from .hub import HubPublishError, push
        try:
            url, commit = push(out, args.push_to_hub, private=args.hub_private)
        except HubPublishError as e:
            return fail(e, 4)
        print(f"published to {url} (commit {commit})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
