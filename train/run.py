#!/usr/bin/env python
"""Train a CycleGAN on unpaired images.

    python train/run.py --data ROOT --out RUN_DIR                  # ROOT/trainA, ROOT/trainB
    python train/run.py --hf-dataset huggan/horse2zebra --out RUN_DIR
    python train/run.py --data ROOT --out RUN_DIR --resume         # continue exactly where it stopped
    torchrun --nproc_per_node 2 train/run.py --data ROOT --out RUN_DIR   # data parallel

RUN_DIR receives: checkpoint.safetensors (everything needed to resume), model/ (the published form:
config.json + model.safetensors), samples/epoch_NNN.png, losses.csv, losses.png and run.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm import tqdm  # noqa: E402

from cyclegan import CycleGAN  # noqa: E402
from cyclegan.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from cyclegan.data import DataError, EpochSampler, UnpairedImages, folder_domains, hf_domains  # noqa: E402
from cyclegan.config import CycleGANConfig  # noqa: E402
from cyclegan.plots import plot_losses, save_sample_grid  # noqa: E402
from cyclegan.training import LOSS_NAMES, Trainer, lr_factor  # noqa: E402

# Options that define the model and the data pipeline: a resumed run keeps the checkpoint's values.
FIXED_ON_RESUME = ("name_A", "name_B", "netG", "ngf", "n_blocks", "dropout", "ndf", "n_layers_D", "load_size",
                   "crop_size", "no_flip", "batch_size", "n_epochs", "n_epochs_decay", "lr", "beta1", "beta2",
                   "lambda_A", "lambda_B", "lambda_identity", "no_gan", "no_cycle_A", "no_cycle_B", "pool_size",
                   "seed")
CHECKPOINT = "checkpoint.safetensors"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a CycleGAN (arXiv 1703.10593) on two unpaired image domains.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", help="folder with trainA/ and trainB/ (the reference layout)")
    g.add_argument("--hf-dataset", help="Hugging Face dataset name or save_to_disk folder, instead of --data")
    g.add_argument("--hf-columns", nargs=2, default=["imageA", "imageB"], metavar=("COL_A", "COL_B"),
                   help="the dataset's image columns for domains A and B")
    g.add_argument("--hf-split", default="train", help="the dataset split to train on")
    g.add_argument("--name-A", dest="name_A", default=None, help="name of domain A, e.g. horse (default: A)")
    g.add_argument("--name-B", dest="name_B", default=None, help="name of domain B, e.g. zebra (default: B)")
    g.add_argument("--load-size", type=int, default=286, help="images are resized to this square size ...")
    g.add_argument("--crop-size", type=int, default=256, help="... then randomly cropped to this size")
    g.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    g.add_argument("--workers", type=int, default=0, help="data-loading worker processes")

    g = p.add_argument_group("model")
    g.add_argument("--netG", choices=["resnet", "unet"], default="resnet", help="generator architecture")
    g.add_argument("--ngf", type=int, default=64, help="generator width (filters of the first conv)")
    g.add_argument("--n-blocks", type=int, default=9,
                   help="residual blocks of a resnet generator (9 or 6), or halvings of a unet (8 for 256x256)")
    g.add_argument("--dropout", action="store_true", help="dropout 0.5 in the generators")
    g.add_argument("--ndf", type=int, default=64, help="discriminator width")
    g.add_argument("--n-layers-D", dest="n_layers_D", type=int, default=3, help="discriminator depth (3: 70x70 patches)")

    g = p.add_argument_group("losses (the paper's ablations are one flag each)")
    g.add_argument("--lambda-A", dest="lambda_A", type=float, default=10.0, help="weight of the forward cycle A->B->A")
    g.add_argument("--lambda-B", dest="lambda_B", type=float, default=10.0, help="weight of the backward cycle B->A->B")
    g.add_argument("--lambda-identity", type=float, default=0.5,
                   help="identity weight as a fraction of lambda_A/lambda_B; 0 turns identity off")
    g.add_argument("--no-gan", action="store_true", help="drop both adversarial terms (cycle alone)")
    g.add_argument("--no-cycle-A", dest="no_cycle_A", action="store_true", help="drop the forward cycle A->B->A")
    g.add_argument("--no-cycle-B", dest="no_cycle_B", action="store_true", help="drop the backward cycle B->A->B")

    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, default=1, help="images per domain per step (per process)")
    g.add_argument("--n-epochs", type=int, default=100, help="epochs at the initial learning rate")
    g.add_argument("--n-epochs-decay", type=int, default=100, help="epochs of linear decay of the rate to 0")
    g.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in all (for short runs)")
    g.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate")
    g.add_argument("--beta1", type=float, default=0.5, help="Adam beta1")
    g.add_argument("--beta2", type=float, default=0.999, help="Adam beta2")
    g.add_argument("--pool-size", type=int, default=50, help="history pool size per discriminator (0: none)")
    g.add_argument("--seed", type=int, default=0, help="random seed (CPU runs with the same seed repeat exactly)")

    g = p.add_argument_group("devices")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--bf16", action="store_true", help="bf16 autocast for the networks (CUDA)")
    g.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")

    g = p.add_argument_group("output")
    g.add_argument("--out", required=True, help="run folder: checkpoint, samples, losses, exported model")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors at the exact step")
    g.add_argument("--save-every", type=int, default=500, help="also checkpoint every this many steps (0: epoch ends only)")
    g.add_argument("--export-discriminators", action="store_true",
                   help="keep D_A and D_B in the exported model/ (the app then shows the realness map)")

    g = p.add_argument_group("Hugging Face Hub")
    g.add_argument("--push-to-hub", metavar="USER/REPO", default=None, help="publish the model there at the end")
    g.add_argument("--hub-every", type=int, default=0, metavar="K", help="also publish every K epochs")
    g.add_argument("--hub-private", action="store_true", help="create the repo as private")

    g = p.add_argument_group("testing")
    g.add_argument("--fault", default=None, metavar="STEP:KIND",
                   help="simulate a failure after STEP steps: 'kill' (SIGKILL, like a crash) or 'nan' (a NaN loss)")
    args = p.parse_args(argv)
    if bool(args.data) == bool(args.hf_dataset):
        p.error("give exactly one of --data and --hf-dataset")
    return args


def setup_distributed(args) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if args.device == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0)
        elif torch.backends.mps.is_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
    else:
        device = torch.device(args.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


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
        self.path = run_dir / "losses.csv"
        self.png = run_dir / "losses.png"
        fields = ["step", "epoch", "lr", *LOSS_NAMES]
        rows = []
        if resume_step is not None and self.path.exists():  # drop rows written after the checkpoint
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.file = open(self.path, "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=fields)
        self.writer.writeheader()
        self.writer.writerows(rows)

    def add(self, step: int, epoch: int, lr: float, losses: dict) -> None:
        self.writer.writerow({"step": step, "epoch": epoch, "lr": f"{lr:.6g}", **{k: f"{v:.6g}" for k, v in losses.items()}})

    def flush_and_plot(self) -> None:
        self.file.flush()
        plot_losses(self.path, self.png)


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python train/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = Path(args.out)
    ckpt_path = run_dir / CHECKPOINT

    state = None
    if args.resume:
        try:
            state = load_checkpoint(ckpt_path)
        except CheckpointError as e:
            print(f"error: cannot resume: {e}", file=sys.stderr)
            return 2
        saved = state["args"]
        for key in FIXED_ON_RESUME:
            if key in saved:
                setattr(args, key, saved[key])
    elif ckpt_path.exists():
        print(f"error: {ckpt_path} exists; pass --resume to continue that run or choose another --out",
              file=sys.stderr)
        return 2

    try:
        dataset = build_data(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rank, world, device = setup_distributed(args)
    is_main = rank == 0
    torch.manual_seed(args.seed + rank)
    if is_main:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)

    names = {"name_A": args.name_A or "A", "name_B": args.name_B or "B"}
    args.name_A, args.name_B = names["name_A"], names["name_B"]
    depth = {"unet_depth" if args.netG == "unet" else "n_blocks": args.n_blocks}  # --n-blocks: U-Net halvings too
    model = CycleGAN(CycleGANConfig(**names, **depth, netG=args.netG, ngf=args.ngf,
                                    use_dropout=args.dropout, with_discriminators=True, ndf=args.ndf,
                                    n_layers_D=args.n_layers_D, lambda_A=args.lambda_A, lambda_B=args.lambda_B,
                                    lambda_identity=args.lambda_identity, use_gan=not args.no_gan,
                                    use_cycle_A=not args.no_cycle_A, use_cycle_B=not args.no_cycle_B))
    trainer = Trainer(model, lr=args.lr, betas=(args.beta1, args.beta2), pool_size=args.pool_size,
                      seed=args.seed, device=device, bf16=args.bf16, channels_last=args.channels_last,
                      distributed=world > 1)

    step, epoch, skip = 0, 0, 0
    steps_per_epoch = math.ceil(math.ceil(len(dataset) / world) / args.batch_size)
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        step, epoch = state["step"], state["epoch"]
        skip = (step - state["epoch_start_step"]) * args.batch_size
        torch.set_rng_state(state["rng"]["torch"])
        if is_main:
            print(f"resuming {run_dir} at step {step} (epoch {epoch + 1}, lr {state['lr']:.3g})")
    epoch_start_step = step - skip // args.batch_size
    total_epochs = args.n_epochs + args.n_epochs_decay
    max_steps = args.max_steps if args.max_steps is not None else total_epochs * steps_per_epoch
    fault_step, fault_kind = (int(args.fault.split(":")[0]), args.fault.split(":")[1]) if args.fault else (None, None)

    log = LossLog(run_dir, step if state is not None else None) if is_main else None
    fixed_A, fixed_B = sample_batch(dataset, args.data)

    saved_step, exported_step = (step if state is not None else -1), -1

    def checkpoint() -> None:
        nonlocal saved_step
        if is_main and saved_step != step:
            save_checkpoint(ckpt_path, {"trainer": trainer.state_dict(), "step": step, "epoch": epoch,
                                        "epoch_start_step": epoch_start_step, "lr": lr,
                                        "rng": {"torch": torch.get_rng_state()}, "args": vars(args),
                                        "command": command})
            log.flush_and_plot()
        saved_step = step

    def end_of_epoch(label: str) -> None:
        nonlocal exported_step
        if is_main and exported_step != step:
            save_sample_grid(model, fixed_A, fixed_B, run_dir / "samples" / f"{label}.png")
            export(model, run_dir, args, command, step, epoch, last_losses)
        exported_step = step

    bar = tqdm(total=max_steps, initial=step, disable=not is_main, dynamic_ncols=True, mininterval=1.0)
    last_losses: dict = {}
    status = 0
    lr = args.lr * lr_factor(epoch, args.n_epochs, args.n_epochs_decay)
    try:
        while step < max_steps and epoch < total_epochs:
            lr = args.lr * lr_factor(epoch, args.n_epochs, args.n_epochs_decay)
            trainer.set_lr(lr)
            sampler = EpochSampler(len(dataset), args.seed, epoch, skip, rank, world)
            loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                                pin_memory=device.type == "cuda")
            for batch in loader:
                if step >= max_steps:
                    break
                if fault_kind == "nan" and step == fault_step:
                    batch["A"] = batch["A"] * float("nan")
                last_losses = trainer.train_step(batch["A"], batch["B"])
                step += 1
                if is_main:
                    log.add(step, epoch + 1, lr, last_losses)
                    bar.update(1)
                    bar.set_postfix_str(f"epoch {epoch + 1}/{total_epochs} G {last_losses['G_total']:.3f} "
                                        f"cyc {last_losses['cycle_A'] + last_losses['cycle_B']:.3f} "
                                        f"D {last_losses['D_A'] + last_losses['D_B']:.3f}", refresh=False)
                if args.save_every and step % args.save_every == 0:
                    checkpoint()
                if fault_kind == "kill" and step == fault_step:
                    os.kill(os.getpid(), signal.SIGKILL)
            else:  # the epoch ran to its end
                epoch += 1
                skip, epoch_start_step = 0, step
                checkpoint()
                end_of_epoch(f"epoch_{epoch:03d}")
                if is_main and args.push_to_hub and args.hub_every and epoch % args.hub_every == 0:
                    status = publish(run_dir, args) or status
                continue
            break
        checkpoint()
        end_of_epoch(f"epoch_{epoch + 1:03d}_step_{step}")
    except FloatingPointError as e:
        bar.close()
        if is_main:
            print(f"\nerror at step {step + 1}: {e}.\nThe last good checkpoint is {ckpt_path} "
                  f"(resume with --resume, perhaps with a lower --lr).", file=sys.stderr)
        return 3
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    bar.close()
    if is_main:
        print(f"done: {step} steps; run folder {run_dir}; model in {run_dir / 'model'}")
        if args.push_to_hub:
            status = publish(run_dir, args) or status
    return status


def export(model: CycleGAN, run_dir: Path, args, command: str, step: int, epoch: int, losses: dict) -> None:
    """RUN_DIR/model: the model as it is published (generators; discriminators if asked) + run.json."""
    out = model if args.export_discriminators else model.without_discriminators()
    out.save_pretrained(run_dir / "model")
    info = {"command": command, "step": step, "epoch": epoch, "final_losses": losses,
            "data": args.data or args.hf_dataset, "args": vars(args)}
    (run_dir / "run.json").write_text(json.dumps(info, indent=2))


def publish(run_dir: Path, args) -> int:
    """Uploads RUN_DIR/model; a failure leaves the run intact and says how to retry. Returns an exit status."""
    from cyclegan.hub import HubPublishError, publish_run
    try:
        url = publish_run(run_dir, args.push_to_hub, private=args.hub_private)
        print(f"published to {url}")
        return 0
    except HubPublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
