"""Train a CycleGAN (arXiv 1703.10593) on two unpaired image domains.

    python -m cyclegan.train --data ROOT --out RUN_DIR                  # ROOT/trainA, ROOT/trainB
    python -m cyclegan.train --hf-dataset huggan/horse2zebra --out RUN_DIR
    python -m cyclegan.train --data ROOT --out RUN_DIR --resume         # continue exactly where it stopped
    python -m cyclegan.train --data ROOT --out RUN_DIR --init-from models/photo2sketch   # fine-tune a model
    torchrun --nproc_per_node 2 -m cyclegan.train --data ROOT --out RUN_DIR   # data parallel

`python train/run.py ...` is the same command. `main` reads top to bottom: parse the options, reconcile them
with the run's own when resuming, check everything that can be checked before a file is written, build the
data, the model and the trainer, loop, save. RUN_DIR receives checkpoint.safetensors (everything needed to
resume), model/ (the published form: config.json, model.safetensors and a model card), samples/epoch_NNN.png,
losses.csv, losses.png and run.json (every command line of the run, the last losses, the options).

What --resume does with each option:
  - the model's config (architecture, domain names, loss weights and switches) and the data the saved
    state depends on (--crop-size, --batch-size, --pool-size, --seed) are the run's; typing a different value
    is refused, in one message that names each such option and the run's value;
  - the schedule and the rest of the recipe (--n-epochs, --n-epochs-decay, --lr, --beta1/2, --load-size,
    --no-flip, --save-every, --bf16, --channels-last, --export-discriminators) are the run's unless typed; a
    typed value applies from the resumed step on and is said so. A new --lr is the rate at the resumed step;
    the schedule goes on from it (constant until --n-epochs, then linear to 0 at the end);
  - the rest belongs to this command (paths, devices, --max-steps, publishing).

Failures a user can cause are one `error: ...` line and exit status 2 (bad options or data), 3 (a NaN or
diverged loss: the last good checkpoint is kept), 4 (a failed upload: the run is intact), 130 or 143 (Ctrl-C or
SIGTERM: the step reached is saved). Tests inject faults through the environment variable CYCLEGAN_TEST_FAULT=STEP:KIND
(kill, nan, sigint or sigterm after STEP steps); it is not a user option.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from .card import model_card, write_card
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, CycleGANConfig
from .data import DataError, EpochSampler, UnpairedImages, folder_domains, hf_domains
from .model import CycleGAN
from .plots import plot_losses, save_sample_grid
from .training import LOSS_NAMES, Trainer, lr_factor

CHECKPOINT = "checkpoint.safetensors"
PREVIOUS_CHECKPOINT = "checkpoint.prev.safetensors"
FAULT_ENV = "CYCLEGAN_TEST_FAULT"
FAULT_SIGNALS = {"kill": signal.SIGKILL, "sigint": signal.SIGINT, "sigterm": signal.SIGTERM}
# A diverged run: an adversarial term (gan_AB, gan_BA, D_A, D_B: least squares on the discriminators' raw
# scores, whose targets are 0 and 1) above this. The cycle and identity terms cannot diverge: they are L1
# distances between images in [-1, 1] (at most 2 x their weight). Healthy runs stay below 10: the largest
# adversarial term in the first 5000 steps of the default photo2sketch model's run is 2.4, the tiny test model's
# 1.1 at lr 2e-4 and 7.1 at 1e-2 (tests/test_train_cli.py checks < 10 at 2e-4 and 2e-3); `--lr 1` reaches 6.3e3 at
# step 5, `--lr 1e6` 6.6e13 at step 3. A loss of 1000 means scores about 30 away from their targets. NaN and inf
# stop the run in the Trainer.
DIVERGENCE_LIMIT = 1e3
ADVERSARIAL_TERMS = ("gan_AB", "gan_BA", "D_A", "D_B")

# Options that make the model's config (option dest -> config field; the --no-* flags are negated).
CONFIG_OPTIONS = {"name_A": "name_A", "name_B": "name_B", "netG": "netG", "ngf": "ngf", "n_blocks": "n_blocks",
                  "unet_depth": "unet_depth", "dropout": "use_dropout", "ndf": "ndf", "n_layers_D": "n_layers_D",
                  "lambda_A": "lambda_A", "lambda_B": "lambda_B", "lambda_identity": "lambda_identity",
                  "no_gan": "use_gan", "no_cycle_A": "use_cycle_A", "no_cycle_B": "use_cycle_B"}
NEGATED = {"no_gan", "no_cycle_A", "no_cycle_B"}
# The saved state depends on these: the pools hold crop-size fakes of `pool_size`, steps count batches of
# `batch_size`, the data order and the crops come from `seed`.
FIXED_OPTIONS = ("crop_size", "batch_size", "pool_size", "seed")
# The run's values unless typed again; a typed value applies from the resumed step on.
CARRIED_OPTIONS = ("n_epochs", "n_epochs_decay", "lr", "beta1", "beta2", "load_size", "no_flip", "save_every",
                   "bf16", "channels_last", "export_discriminators")


class UsageError(ValueError):
    """Options or a run folder that cannot work: one line, exit status 2, nothing written."""


class Diverged(FloatingPointError):
    """A loss far beyond anything a healthy run reaches."""


# =============================================================================================================
# Options
# =============================================================================================================

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not the usage block
        self.exit(2, f"error: {message} (--help lists the options)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" where there is a default worth showing, and only once."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default is argparse.SUPPRESS
                or not action.option_strings):
            return text
        if isinstance(default, (list, tuple)):
            default = " ".join(map(str, default))
        return f"{text} (default: {default})"


def _positive(kind, minimum):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}")
        if not (value >= minimum) or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text} is below {minimum}" if value < minimum else f"{text} is not finite")
        return value
    return parse


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, formatter_class=_HelpFormatter,
                description="Train a CycleGAN (arXiv 1703.10593) on two unpaired image domains. On --resume, "
                            "options not typed again keep the run's values; see the README's training section.")
    count, whole = _positive(int, 0), _positive(int, 1)
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="ROOT", help="folder with trainA/ and trainB/ (the reference layout)")
    g.add_argument("--hf-dataset", metavar="NAME_OR_DIR", help="Hugging Face dataset name or save_to_disk folder, instead of --data")
    g.add_argument("--hf-columns", nargs=2, default=["imageA", "imageB"], metavar=("COL_A", "COL_B"),
                   help="the dataset's image columns for domains A and B")
    g.add_argument("--hf-split", metavar="SPLIT", default="train", help="the dataset split to train on")
    g.add_argument("--name-A", metavar="NAME", dest="name_A", default="A", help="name of domain A, e.g. horse")
    g.add_argument("--name-B", metavar="NAME", dest="name_B", default="B", help="name of domain B, e.g. zebra")
    g.add_argument("--load-size", metavar="PX", type=whole, default=286, help="images are resized to this square size ...")
    g.add_argument("--crop-size", metavar="PX", type=whole, default=256,
                   help="... then randomly cropped to this size (a multiple of 4 for resnet, of 2**depth for unet)")
    g.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    g.add_argument("--workers", metavar="N", type=count, default=0, help="data-loading worker processes")

    g = p.add_argument_group("model")
    g.add_argument("--netG", choices=["resnet", "unet"], default="resnet", help="generator architecture")
    g.add_argument("--ngf", metavar="N", type=whole, default=64, help="generator width (filters of the first conv)")
    g.add_argument("--n-blocks", metavar="N", type=count, default=9, help="residual blocks of the resnet generator (9 or 6)")
    g.add_argument("--unet-depth", metavar="N", type=whole, default=8,
                   help="halvings of the unet generator (8 for 256x256 crops); crops must be multiples of 2**depth")
    g.add_argument("--dropout", action="store_true", help="dropout 0.5 in the generators")
    g.add_argument("--ndf", metavar="N", type=whole, default=64, help="discriminator width")
    g.add_argument("--n-layers-D", metavar="N", dest="n_layers_D", type=whole, default=3,
                   help="discriminator depth (3: 70x70 patches)")

    g = p.add_argument_group("losses (the paper's ablations are one flag each)")
    g.add_argument("--lambda-A", metavar="W", dest="lambda_A", type=_positive(float, 0), default=10.0,
                   help="weight of the forward cycle A->B->A")
    g.add_argument("--lambda-B", metavar="W", dest="lambda_B", type=_positive(float, 0), default=10.0,
                   help="weight of the backward cycle B->A->B")
    g.add_argument("--lambda-identity", metavar="W", type=_positive(float, 0), default=0.5,
                   help="identity weight as a fraction of lambda_A/lambda_B; 0 turns identity off")
    g.add_argument("--no-gan", action="store_true", help="drop both adversarial terms (cycle alone)")
    g.add_argument("--no-cycle-A", dest="no_cycle_A", action="store_true", help="drop the forward cycle A->B->A")
    g.add_argument("--no-cycle-B", dest="no_cycle_B", action="store_true", help="drop the backward cycle B->A->B")

    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", metavar="N", type=whole, default=1, help="images per domain per step (per process)")
    g.add_argument("--n-epochs", metavar="N", type=count, default=100, help="epochs at the initial learning rate")
    g.add_argument("--n-epochs-decay", metavar="N", type=count, default=100, help="epochs of linear decay of the rate to 0")
    g.add_argument("--max-steps", metavar="N", type=count, default=0,
                   help="stop after this many steps in all (0: at the end of the schedule)")
    g.add_argument("--lr", metavar="RATE", type=_positive(float, 0), default=2e-4,
                   help="Adam learning rate (on --resume: the rate from the resumed step on)")
    g.add_argument("--beta1", metavar="B", type=_positive(float, 0), default=0.5, help="Adam beta1")
    g.add_argument("--beta2", metavar="B", type=_positive(float, 0), default=0.999, help="Adam beta2")
    g.add_argument("--pool-size", metavar="N", type=count, default=50, help="history pool size per discriminator (0: none)")
    g.add_argument("--seed", metavar="N", type=count, default=0, help="random seed (CPU runs with the same seed repeat exactly)")

    g = p.add_argument_group("devices")
    g.add_argument("--device", metavar="DEVICE", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False, help="bfloat16 autocast for the networks (meant for CUDA)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False, help="channels_last memory format (meant for CUDA)")
    g.add_argument("--threads", metavar="N", type=whole, default=None, help="torch CPU threads (default: torch's choice)")

    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="RUN_DIR", required=True, help="run folder: checkpoint, samples, losses, exported model")
    g.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.safetensors at the exact step (options not typed keep the "
                        "run's values)")
    g.add_argument("--init-from", metavar="MODEL", default=None,
                   help="start a new run from this model's weights (a save_pretrained folder or Hub repo "
                        "id[@revision]; the same architecture options): fine-tuning on new data; its "
                        "discriminators too when it has them")
    g.add_argument("--save-every", metavar="N", type=count, default=500,
                   help="also checkpoint every this many steps (0: at epoch ends only)")
    g.add_argument("--export-discriminators", action=argparse.BooleanOptionalAction, default=False,
                   help="keep D_A and D_B in the exported model/ (the app then shows the realness map)")

    g = p.add_argument_group("Hugging Face Hub")
    g.add_argument("--push-to-hub", metavar="USER/REPO", default=None, help="publish the model there at the end")
    g.add_argument("--hub-every", type=count, default=0, metavar="K",
                   help="also publish every K epochs (with --push-to-hub)")
    g.add_argument("--hub-private", action="store_true", help="create the repo as private (with --push-to-hub)")
    return p


def typed_options(argv: list[str]) -> set[str]:
    """The option dests that `argv` sets explicitly (a parse with every default suppressed)."""
    bare = build_parser()
    for action in bare._actions:
        action.default = argparse.SUPPRESS
        action.required = False
    return set(vars(bare.parse_args(argv)))


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def typed_text(dest: str, value) -> str:
    """An option as typed: "--ngf 16", "--no-gan", "--no-bf16"."""
    if isinstance(value, bool):
        return flag(dest) if value or dest.startswith("no_") else flag("no_" + dest)
    return f"{flag(dest)} {show(value)}"


def run_value(dest: str, value) -> str:
    """A run's stored value in words: "8", "with --no-gan", "without --bf16"."""
    if isinstance(value, bool):
        return f"{'with' if value else 'without'} {flag(dest)}"
    return show(value)


def check_options(args, typed: set[str]) -> list[str]:
    """Refuses options that would be ignored or cannot work (UsageError); returns notes on the rest."""
    if bool(args.data) == bool(args.hf_dataset):
        raise UsageError("give exactly one of --data and --hf-dataset")
    if args.data and typed & {"hf_columns", "hf_split"}:
        raise UsageError(f"{', '.join(flag(d) for d in sorted(typed & {'hf_columns', 'hf_split'}))} "
                         f"only applies to --hf-dataset, not to --data folders")
    if not args.push_to_hub and typed & {"hub_every", "hub_private"}:
        raise UsageError(f"{', '.join(flag(d) for d in sorted(typed & {'hub_every', 'hub_private'}))} "
                         f"only applies with --push-to-hub USER/REPO")
    if args.netG == "unet" and "n_blocks" in typed:
        depth = max([d for d in range(5, 11) if args.crop_size % 2 ** d == 0], default=None)
        raise UsageError("--n-blocks counts the residual blocks of --netG resnet; a U-Net's depth is "
                         "--unet-depth (8 halvings for 256x256 crops" + (
                             f", at most {depth} for --crop-size {args.crop_size})" if depth else ")"))
    if args.netG == "resnet" and "unet_depth" in typed:
        raise UsageError("--unet-depth is the depth of --netG unet; the resnet generator's is --n-blocks")
    if args.n_epochs + args.n_epochs_decay < 1:
        raise UsageError("--n-epochs + --n-epochs-decay must be at least 1 epoch")
    if not 0 <= args.beta1 < 1 or not 0 <= args.beta2 < 1:
        raise UsageError(f"Adam's --beta1 and --beta2 must be in [0, 1), got {args.beta1:g} and {args.beta2:g}")
    if args.lr <= 0:
        raise UsageError(f"--lr must be above 0, got {args.lr:g}")
    if args.crop_size > args.load_size:
        raise UsageError(f"--crop-size {args.crop_size} is larger than --load-size {args.load_size}: images are "
                         f"resized to --load-size, then cropped")
    notes = []
    unused = [d for d in ("ndf", "n_layers_D", "pool_size") if d in typed]
    if args.no_gan and unused:
        notes.append(f"{', '.join(flag(d) for d in unused)} change nothing with --no-gan: no discriminator is "
                     f"trained")
    return notes


def check_sizes(config: CycleGANConfig, crop: int) -> None:
    """Refuses a crop size that the generator or the discriminator cannot take (UsageError naming the sizes
    that work); arithmetic on the config, nothing is allocated."""
    multiple, smallest = config.size_multiple, config.min_side
    if config.netG == "unet" and (crop % multiple or crop < multiple):
        fits = [d for d in range(5, crop.bit_length()) if crop % 2 ** d == 0]
        instead = (f"or --unet-depth {max(fits)} or less for {crop}x{crop} crops" if fits
                   else "a U-Net needs crops that are multiples of 32 at least (depth 5)")
        raise UsageError(f"--crop-size {crop} does not suit a U-Net of depth {config.unet_depth}: its input sides "
                         f"must be multiples of 2**{config.unet_depth} = {multiple}; use --crop-size "
                         f"{max(multiple, smallest)} (and --load-size at least that), {instead}")
    if crop % multiple:
        lower, upper = crop - crop % multiple, crop - crop % multiple + multiple
        raise UsageError(f"--crop-size {crop} is not a multiple of {multiple}, which the resnet generator needs "
                         f"(two stride-2 convolutions): use --crop-size {max(lower, smallest)} or {upper}")
    if crop < smallest:
        generator_alone = config.replace(with_discriminators=False).min_side
        why = (f"the {config.n_layers_D}-layer PatchGAN discriminator needs {smallest}, the generator "
               f"{generator_alone}" if generator_alone < smallest else f"the generator needs {smallest}")
        raise UsageError(f"--crop-size {crop} is too small for these networks: the smallest crop that works is "
                         f"{smallest} ({why}); use --crop-size {smallest} and --load-size at least that")


def model_config(args) -> CycleGANConfig:
    """The model's config from the options, its sizes checked against --crop-size, its bounds validated.
    Raises UsageError naming the options (not the config's fields)."""
    fields = {field: (not getattr(args, dest)) if dest in NEGATED else getattr(args, dest)
              for dest, field in CONFIG_OPTIONS.items()}
    try:
        config = CycleGANConfig(**fields, with_discriminators=True)
        # The memory cap is for servers that load strangers' models, not for someone training their own;
        # the crop size is judged by check_sizes, which names the sizes that work.
        config.validate(max_model_mb=math.inf, working_side=max(args.crop_size, 512, config.size_multiple))
        check_sizes(config, args.crop_size)
        return config
    except ConfigError as e:
        text = str(e).removeprefix("config: ")
        for dest, field in CONFIG_OPTIONS.items():
            if text.startswith(f"{field} "):
                text = f"{flag(dest)}{text[len(field):]}"
        raise UsageError(text) from None


def choose_device(args, world: int) -> torch.device:
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local if world > 1 else 0)
        return torch.device("mps") if torch.backends.mps.is_available() else torch.device("cpu")
    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {args.device} is not a device: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {args.device}: this machine has no CUDA GPU that torch {torch.__version__} "
                             f"can use; use --device cpu (or auto)")
        if world > 1:
            device = torch.device("cuda", local)
        elif (device.index or 0) >= torch.cuda.device_count():
            raise UsageError(f"--device {args.device}: there are {torch.cuda.device_count()} CUDA devices")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {args.device}: MPS is not available on this machine; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {args.device} is not supported: use auto, cpu, cuda, cuda:N or mps")
    return device


def device_notes(args, device: torch.device) -> list[str]:
    notes = []
    if args.bf16 and device.type != "cuda":
        notes.append(f"--bf16 on {device.type}: the networks run under torch's bfloat16 autocast on the "
                     f"{device.type.upper()} (losses and weights stay float32); it is faster only where the "
                     f"processor has bfloat16 instructions, and results differ from float32 runs")
    if args.channels_last and device.type != "cuda":
        notes.append(f"--channels-last on {device.type}: images and weights use the channels_last memory format "
                     f"on the {device.type.upper()}; same results, and it speeds up some processors' "
                     f"convolutions and slows others")
    return notes


# =============================================================================================================
# Resuming
# =============================================================================================================

def run_options(args) -> dict:
    """The options a checkpoint keeps (the run's own, as --resume reads them back)."""
    return {d: getattr(args, d) for d in (*CONFIG_OPTIONS, *FIXED_OPTIONS, *CARRIED_OPTIONS)}


def stored_run(state: dict) -> tuple[dict, list[str], float]:
    """(options, command lines, base rate) of a checkpoint, also from one written before they were kept."""
    if "options" in state:
        options = dict(state["options"])
        for dest, field in CONFIG_OPTIONS.items():  # the saved config is the authority on the model
            value = state["config"][field]
            options[dest] = (not value) if dest in NEGATED else value
        return options, list(state["commands"]), state["lr_base"]
    old = dict(state["args"])  # train/run.py before the config dataclass: every option, one command
    old["name_A"], old["name_B"] = old.get("name_A") or "A", old.get("name_B") or "B"
    if old.get("netG") == "unet":  # --n-blocks then meant a U-Net's depth
        old["unet_depth"], old["n_blocks"] = old["n_blocks"], 9
    old.setdefault("unet_depth", 8)
    old.setdefault("save_every", 500)
    return {d: old.get(d) for d in (*CONFIG_OPTIONS, *FIXED_OPTIONS, *CARRIED_OPTIONS)}, [state["command"]], old["lr"]


def reconcile(args, typed: set[str], state: dict, run_dir: Path) -> tuple[list[str], float]:
    """Gives `args` the run's options where none were typed; refuses typed changes to the model's config and
    the fixed options (one UsageError naming each with the run's value); returns notes on the changes it
    honours and the base learning rate (the rate of the initial epochs) from the resumed step on."""
    stored, _, lr_base = stored_run(state)
    refused = [f"{typed_text(d, getattr(args, d))} (the run's: {run_value(d, stored[d])})"
               for d in (*CONFIG_OPTIONS, *FIXED_OPTIONS) if d in typed and getattr(args, d) != stored[d]]
    if refused:
        raise UsageError(f"cannot resume {run_dir} with another model or other training data: {'; '.join(refused)}. "
                         f"These are fixed for a run: resume without them, or start a new run with another --out")
    step, epoch = state["step"], state["epoch"]
    notes = []
    for d in (*CONFIG_OPTIONS, *FIXED_OPTIONS, *CARRIED_OPTIONS):
        if d not in typed:
            setattr(args, d, stored[d])
        elif getattr(args, d) != stored[d] and d != "lr":
            notes.append(f"{typed_text(d, getattr(args, d))} applies from step {step} on "
                         f"(the run's: {run_value(d, stored[d])})")
    if "lr" in typed and args.lr != stored["lr"]:
        # The typed rate is the rate now; the schedule goes on from it, scaled (past the schedule's end the
        # factor is 0 and nothing is trained anyway).
        was = lr_base * lr_factor(epoch, stored["n_epochs"], stored["n_epochs_decay"])
        factor = lr_factor(epoch, args.n_epochs, args.n_epochs_decay)
        lr_base = args.lr / factor if factor > 0 else args.lr
        notes.append(f"--lr {args.lr:g} is the rate from step {step} on (it was {was:.3g}); the schedule goes on "
                     f"from it: constant until epoch {args.n_epochs}, then linear to 0 at epoch "
                     f"{args.n_epochs + args.n_epochs_decay}")
    return notes, lr_base


# =============================================================================================================
# Data, logging, saving
# =============================================================================================================

def build_data(args):
    if args.data:
        domain_A, domain_B = folder_domains(args.data, "train")
    else:
        domain_A, domain_B = hf_domains(args.hf_dataset, *args.hf_columns, split=args.hf_split)
    return UnpairedImages(domain_A, domain_B, args.load_size, args.crop_size, not args.no_flip, args.seed)


def sample_batch(dataset: UnpairedImages, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed images for the per-epoch sample grid: the first test images when ROOT/testA|testB exist."""
    domains = (dataset.A, dataset.B)
    if data_root:
        try:
            domains = folder_domains(data_root, "test")
        except DataError:
            pass
    item = UnpairedImages(*domains, dataset.crop_size, dataset.crop_size, False, 0)[(0, 0)]
    return item["A"][None], item["B"][None]


class LossLog:
    """losses.csv (one row per step) and losses.png in the run folder."""

    def __init__(self, run_dir: Path, resume_step: int | None):
        self.path, self.png = run_dir / "losses.csv", run_dir / "losses.png"
        rows = []
        if resume_step is not None and self.path.exists():  # drop rows written after the checkpoint
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.file = open(self.path, "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=["step", "epoch", "lr", *LOSS_NAMES])
        self.writer.writeheader()
        self.writer.writerows(rows)

    def add(self, step: int, epoch: int, lr: float, losses: dict) -> None:
        self.writer.writerow({"step": step, "epoch": epoch, "lr": f"{lr:.6g}",
                              **{k: f"{v:.6g}" for k, v in losses.items()}})

    def flush_and_plot(self) -> None:
        self.file.flush()
        plot_losses(self.path, self.png)


@dataclass
class Progress:
    """Where the run is: steps done, epochs completed, the step at which the current epoch began."""
    step: int = 0
    epoch: int = 0
    epoch_start_step: int = 0


class RunFolder:
    """What rank 0 writes to RUN_DIR: the checkpoint (and the one before it), the exported model, run.json.

    A loss is computed from the weights of the step before, so a NaN or diverged loss at step k + 1 condemns
    a checkpoint written at step k. The previous checkpoint is therefore kept as a hard link (no copy) in
    checkpoint.prev.safetensors until a later one has been followed by a healthy step."""

    def __init__(self, run_dir: Path, args, config: CycleGANConfig, commands: list[str], is_main: bool,
                 saved_step: int = -1):
        self.dir, self.args, self.config, self.commands, self.is_main = run_dir, args, config, commands, is_main
        self.checkpoint_path = run_dir / CHECKPOINT
        self.previous_path = run_dir / PREVIOUS_CHECKPOINT
        self.saved_step, self.previous_step, self.exported_step = saved_step, None, -1

    def save(self, trainer: Trainer, progress: Progress, lr_base: float, lr: float, log: LossLog | None) -> None:
        if not self.is_main or self.saved_step == progress.step:
            return
        self.previous_path.unlink(missing_ok=True)
        if self.saved_step >= 0 and self.checkpoint_path.exists():
            try:
                os.link(self.checkpoint_path, self.previous_path)
            except OSError:  # a file system without hard links
                shutil.copyfile(self.checkpoint_path, self.previous_path)
            self.previous_step = self.saved_step
        save_checkpoint(self.checkpoint_path, {
            "trainer": trainer.state_dict(), "step": progress.step, "epoch": progress.epoch,
            "epoch_start_step": progress.epoch_start_step, "lr": lr, "lr_base": lr_base,
            "rng": {"torch": torch.get_rng_state()}, "config": self.config.to_dict(),
            "options": run_options(self.args), "commands": self.commands})
        log.flush_and_plot()
        self.saved_step = progress.step

    def keep_last_good(self, failed_after: int) -> int:
        """After a bad loss computed from the weights of step `failed_after`: puts back the previous checkpoint
        if the current one holds those weights. Returns the step of the checkpoint left (a new run writes one
        at step 0, so there is always one)."""
        if self.saved_step == failed_after and self.previous_step is not None and self.previous_path.exists():
            self.previous_path.replace(self.checkpoint_path)
            self.saved_step, self.previous_step = self.previous_step, None
        return self.saved_step

    def forget_previous(self) -> None:
        """At a clean end (done or Ctrl-C) the last checkpoint stands alone."""
        if self.is_main:
            self.previous_path.unlink(missing_ok=True)

    def export(self, model: CycleGAN, progress: Progress, losses: dict, fixed: tuple, label: str) -> None:
        """samples/LABEL.png, model/ (the model as published, with a card saying where it is) and run.json."""
        if not self.is_main or self.exported_step == progress.step:
            return
        save_sample_grid(model, *fixed, self.dir / "samples" / f"{label}.png")
        out = model if self.args.export_discriminators else model.without_discriminators()
        model_dir = self.dir / "model"
        out.save_pretrained(model_dir)
        info = {"commands": self.commands, "command": self.commands[-1],  # every command line; the latest
                "step": progress.step, "epoch": progress.epoch, "final_losses": losses,
                "data": self.args.data or self.args.hf_dataset, "config": self.config.to_dict(),
                "args": vars(self.args)}
        (self.dir / "run.json").write_text(json.dumps(info, indent=2))
        write_card(model_dir, model_card(out.config.to_dict(), local_path=model_dir, run=info,
                                         n_params=sum(p.numel() for p in out.parameters())))
        self.exported_step = progress.step


def publish(run_dir: Path, args) -> int:
    """Uploads RUN_DIR/model; a failure leaves the run intact and says how to retry. Returns an exit status."""
    from .hub import HubPublishError, publish_run
    try:
        print(f"published to {publish_run(run_dir, args.push_to_hub, private=args.hub_private)}")
        return 0
    except HubPublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 4


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM (docker stop, a scheduler's preemption) asks the loop to stop after the
    current step and save it; a second one stops at once. `signum` is the signal received (0: none)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = 0
        self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    @property
    def requested(self) -> bool:
        return self.signum != 0

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step (Ctrl-C again to stop at once) ...",
              file=sys.stderr, flush=True)

    def restore(self) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def agreed(self, world: int, device: torch.device) -> bool:
        """True on every rank when any rank was asked to stop (so that all stop at the same step)."""
        if world == 1:
            return self.requested
        flag_ = torch.tensor([float(self.requested)], device=device)
        dist.all_reduce(flag_, op=dist.ReduceOp.MAX)
        return bool(flag_.item())


def injected_fault() -> tuple[int | None, str | None]:
    """CYCLEGAN_TEST_FAULT=STEP:KIND (tests only): after STEP steps, 'kill' (SIGKILL, a crash), 'nan' (the next
    step's loss is NaN), 'sigint' (Ctrl-C) or 'sigterm'."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None, None
    step, kind = spec.split(":")
    return int(step), kind


# =============================================================================================================
# The command: check, build, loop
# =============================================================================================================

@dataclass
class Plan:
    """Everything `prepare` checked and decided before anything is built."""
    args: argparse.Namespace
    run_dir: Path
    config: CycleGANConfig
    device: torch.device
    world: int
    rank: int
    dataset: UnpairedImages
    fixed: tuple[torch.Tensor, torch.Tensor]   # the sample grid's images
    state: dict | None                         # the checkpoint resumed from
    progress: Progress
    lr_base: float                             # the rate of the initial epochs; the schedule scales it
    commands: list[str]                        # every command line of the run, this one last
    steps_per_epoch: int
    schedule_end: int                          # the step at which the schedule ends
    max_steps: int                             # the step at which this command stops
    notes: list[str]
    init_state: dict | None = None             # --init-from: the weights the new run starts from


def prepare(args, typed: set[str], command: str) -> Plan:
    """Checks the options (reconciled with the run's when resuming), the sizes, the device and the data;
    creates the run folder last. Raises UsageError, ConfigError, CheckpointError or DataError (one line)."""
    run_dir = Path(args.out)
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    state, notes, lr_base, commands, progress = None, [], args.lr, [command], Progress()
    if args.resume:
        state = load_checkpoint(run_dir / CHECKPOINT)
        try:
            notes, lr_base = reconcile(args, typed, state, run_dir)
            commands = stored_run(state)[1] + [command]
            progress = Progress(state["step"], state["epoch"], state["epoch_start_step"])
        except KeyError as e:
            raise CheckpointError(f"{run_dir / CHECKPOINT} lacks {e} (not a checkpoint of this program?)") from None
    elif (run_dir / CHECKPOINT).exists():
        raise UsageError(f"{run_dir / CHECKPOINT} exists; pass --resume to continue that run or choose another --out")
    notes += check_options(args, typed)
    config = model_config(args)
    init_state = initial_weights(args, config, notes) if args.init_from else None
    device = choose_device(args, world)
    notes += device_notes(args, device)
    dataset = build_data(args)
    fixed = sample_batch(dataset, args.data)

    steps_per_epoch = math.ceil(math.ceil(len(dataset) / world) / args.batch_size)
    epochs_left = args.n_epochs + args.n_epochs_decay - progress.epoch
    schedule_end = progress.epoch_start_step + max(0, epochs_left) * steps_per_epoch
    max_steps = min(args.max_steps or schedule_end, schedule_end)
    if args.max_steps > schedule_end:
        notes.append(f"--max-steps {args.max_steps} is past the end of the schedule: the run stops after "
                     f"{schedule_end} steps ({args.n_epochs} + {args.n_epochs_decay} epochs of {steps_per_epoch} "
                     f"steps; raise --n-epochs or --n-epochs-decay to train longer)")
    if rank == 0:
        try:
            (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create the run folder {run_dir}: {e.strerror or e}") from None
    return Plan(args, run_dir, config, device, world, rank, dataset, fixed, state, progress, lr_base, commands,
                steps_per_epoch, schedule_end, max_steps, notes, init_state)


ARCHITECTURE = ("netG", "ngf", "n_blocks", "unet_depth", "use_dropout", "netD", "ndf", "n_layers_D")


def initial_weights(args, config: CycleGANConfig, notes: list[str]) -> dict:
    """--init-from: the state dict the new run starts from (both generators; both discriminators when the model
    has them, else they start from random weights and a note says so). Raises UsageError (one line) with
    --resume, for a model that cannot be loaded, or for a different architecture (naming each option)."""
    if args.resume:
        raise UsageError("--init-from starts a new run from a model's weights and --resume continues the run in "
                         "--out from its checkpoint: pass only one of them")
    from .loading import load_model
    try:
        init = load_model(args.init_from)
    except ValueError as e:
        raise UsageError(f"--init-from: {e}") from None
    have, want = init.config.to_dict(), config.to_dict()
    differ = [f"--{k.replace('_', '-')} {have[k]} (this run: {want[k]})" for k in ARCHITECTURE if have[k] != want[k]]
    if differ:
        raise UsageError(f"--init-from {args.init_from} has another architecture; type its options: "
                         + ", ".join(differ))
    state = {k: v for k, v in init.state_dict().items() if k.startswith(("G_AB.", "G_BA."))}
    if config.with_discriminators:
        discriminators = {k: v for k, v in init.state_dict().items() if k.startswith(("D_A.", "D_B."))}
        if discriminators:
            state.update(discriminators)
        else:
            notes.append(f"--init-from {args.init_from} has no discriminators: D_A and D_B start from random "
                         f"weights")
    return state


def build(plan: Plan) -> tuple[CycleGAN, Trainer]:
    """Processes, networks, optimizers and pools; the checkpoint's state when resuming."""
    args = plan.args
    if args.threads:
        torch.set_num_threads(args.threads)
    if plan.world > 1:
        if plan.device.type == "cuda":
            torch.cuda.set_device(plan.device)
        dist.init_process_group("nccl" if plan.device.type == "cuda" else "gloo")
    torch.manual_seed(args.seed + plan.rank)
    model = CycleGAN(plan.config)
    if plan.init_state is not None:
        missing, _ = model.load_state_dict(plan.init_state, strict=False)   # shapes checked in prepare
        assert all(k.startswith(("D_A.", "D_B.")) for k in missing), missing
    trainer = Trainer(model, lr=plan.lr_base, betas=(args.beta1, args.beta2), pool_size=args.pool_size,
                      seed=args.seed, device=plan.device, bf16=args.bf16, channels_last=args.channels_last,
                      distributed=plan.world > 1)
    if plan.state is not None:
        try:
            trainer.load_state_dict(plan.state["trainer"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{plan.run_dir / CHECKPOINT} does not fit the model: {one_line(e)}") from None
        for opt in (trainer.opt_G, trainer.opt_D):  # the optimizers' saved betas give way to the options
            for group in opt.param_groups:
                group["betas"] = (args.beta1, args.beta2)
        torch.set_rng_state(plan.state["rng"]["torch"])
    return model, trainer


def train_loop(plan: Plan, model: CycleGAN, trainer: Trainer) -> int:
    """Steps until `plan.max_steps`: a checkpoint every --save-every steps and at each epoch end, the sample
    grid and the exported model at each epoch end, publishing when asked. Returns the exit status."""
    args, progress, is_main = plan.args, plan.progress, plan.rank == 0
    folder = RunFolder(plan.run_dir, args, plan.config, plan.commands, is_main,
                       saved_step=progress.step if plan.state is not None else -1)
    log = LossLog(plan.run_dir, progress.step if plan.state is not None else None) if is_main else None
    fault_step, fault = injected_fault()
    stop = StopRequest()
    total_epochs = args.n_epochs + args.n_epochs_decay
    bar = tqdm(total=plan.max_steps, initial=progress.step, disable=not is_main, dynamic_ncols=True, mininterval=1.0)
    losses: dict = {}
    lr, status = plan.lr_base, 0
    if plan.state is None:  # step 0: what a run that fails at once (or diverges at step 2) falls back to
        folder.save(trainer, progress, plan.lr_base, lr, log)
    try:
        while progress.step < plan.max_steps and not stop.requested:
            lr = plan.lr_base * lr_factor(progress.epoch, args.n_epochs, args.n_epochs_decay)
            trainer.set_lr(lr)
            done_in_epoch = progress.step - progress.epoch_start_step
            sampler = EpochSampler(len(plan.dataset), args.seed, progress.epoch,
                                   min(done_in_epoch * args.batch_size, math.ceil(len(plan.dataset) / plan.world)),
                                   plan.rank, plan.world)
            loader = DataLoader(plan.dataset, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                                pin_memory=plan.device.type == "cuda")
            for batch in loader:
                if fault == "nan" and progress.step == fault_step:
                    batch["A"] = batch["A"] * float("nan")
                losses = trainer.train_step(batch["A"], batch["B"])  # FloatingPointError on NaN / inf
                check_divergence(losses)
                progress.step += 1
                if is_main:
                    log.add(progress.step, progress.epoch + 1, lr, losses)
                    bar.update(1)
                    bar.set_postfix_str(f"epoch {progress.epoch + 1}/{total_epochs} G {losses['G_total']:.3f} "
                                        f"cyc {losses['cycle_A'] + losses['cycle_B']:.3f} "
                                        f"D {losses['D_A'] + losses['D_B']:.3f}", refresh=False)
                if args.save_every and progress.step % args.save_every == 0:
                    folder.save(trainer, progress, plan.lr_base, lr, log)
                if fault in FAULT_SIGNALS and progress.step == fault_step:
                    os.kill(os.getpid(), FAULT_SIGNALS[fault])
                if progress.step >= plan.max_steps or stop.agreed(plan.world, plan.device):
                    break
            if progress.step - progress.epoch_start_step >= plan.steps_per_epoch:  # the epoch ran to its end
                progress.epoch += 1
                progress.epoch_start_step = progress.step
                folder.save(trainer, progress, plan.lr_base, lr, log)
                folder.export(model, progress, losses, plan.fixed, f"epoch_{progress.epoch:03d}")
                if is_main and args.push_to_hub and args.hub_every and progress.epoch % args.hub_every == 0:
                    status = publish(plan.run_dir, args) or status
        folder.save(trainer, progress, plan.lr_base, lr, log)
        if not stop.requested:
            folder.export(model, progress, losses, plan.fixed, f"epoch_{progress.epoch + 1:03d}_step_{progress.step}")
    except DataError as e:  # every image of a domain became unreadable while training
        bar.close()
        if is_main:
            print(f"\nerror at step {progress.step + 1}: {e}; the last checkpoint is {folder.checkpoint_path} "
                  f"(step {folder.saved_step})", file=sys.stderr)
        return 2
    except FloatingPointError as e:  # a NaN, inf or diverged loss: the weights of this step are not saved
        bar.close()
        if is_main:
            good = folder.keep_last_good(progress.step)
            print(f"\nerror at step {progress.step + 1}: {e}. The last good checkpoint is {folder.checkpoint_path} "
                  f"(step {good}); resume with --resume and a lower --lr.", file=sys.stderr)
        return 3
    finally:
        stop.restore()
        if plan.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    bar.close()
    folder.forget_previous()
    if stop.requested:
        if is_main:
            print(f"error: interrupted ({signal.Signals(stop.signum).name}) at step {progress.step}, which is saved in "
                  f"{folder.checkpoint_path}; continue with the same command and --resume", file=sys.stderr)
        return 128 + stop.signum  # 130 for Ctrl-C, 143 for SIGTERM, as the shell reports a signal
    if is_main:
        print(f"done: {progress.step} steps; run folder {plan.run_dir}; model in {plan.run_dir / 'model'}")
        if args.push_to_hub:
            status = publish(plan.run_dir, args) or status
    return status


def check_divergence(losses: dict[str, float]) -> None:
    """Raises Diverged when an adversarial term passes DIVERGENCE_LIMIT."""
    worst = max(ADVERSARIAL_TERMS, key=lambda k: losses[k])
    if losses[worst] > DIVERGENCE_LIMIT:
        raise Diverged(f"the run diverged: {worst} = {losses[worst]:.3g}, above the limit {DIVERGENCE_LIMIT:g} "
                       f"(healthy runs stay below 10)")


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def main(argv: list[str] | None = None) -> int:
    """`python -m cyclegan.train` / `python train/run.py`; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = "train/run.py" if Path(sys.argv[0]).name == "run.py" else "-m cyclegan.train"
    args = build_parser(prog=prog if prog.endswith(".py") else "python -m cyclegan.train").parse_args(argv)
    try:
        plan = prepare(args, typed_options(argv), f"python {prog} {shlex.join(argv)}")
    except (UsageError, ConfigError, CheckpointError, DataError) as e:
        print(f"error: {'cannot resume: ' if isinstance(e, CheckpointError) else ''}{one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nerror: interrupted before training started; nothing was trained", file=sys.stderr)
        return 130
    if plan.rank == 0:
        for note in plan.notes:
            print(f"note: {note}")
        if plan.state is not None and plan.progress.step < plan.max_steps:
            rate = plan.lr_base * lr_factor(plan.progress.epoch, args.n_epochs, args.n_epochs_decay)
            print(f"resuming {plan.run_dir} at step {plan.progress.step} (epoch {plan.progress.epoch + 1}, lr {rate:.3g})")
    if plan.progress.step >= plan.max_steps:
        if plan.rank == 0:
            print(f"nothing to train: {plan.run_dir} is at step {plan.progress.step}, " + (
                f"the end of its schedule ({args.n_epochs} + {args.n_epochs_decay} epochs). To train more, resume "
                f"with a longer schedule: a larger --n-epochs (more epochs at the initial rate) and/or "
                f"--n-epochs-decay (a longer decay)" if plan.max_steps == plan.schedule_end
                else f"and --max-steps is {args.max_steps}"))
        return 0
    try:
        model, trainer = build(plan)
    except CheckpointError as e:
        print(f"error: cannot resume: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nerror: interrupted before training started; nothing was trained", file=sys.stderr)
        return 130
    try:
        return train_loop(plan, model, trainer)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        print(f"\nerror: interrupted; {plan.run_dir / CHECKPOINT} holds the last checkpoint written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
