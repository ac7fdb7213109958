"""One CycleGAN training step, the optimizers, the history pools and the learning-rate schedule.

The step follows the paper's recipe (generator step, then discriminator step) with fewer network calls
than the straightforward order: G_AB runs once on [real_A, real_B] (translation and identity output
together), likewise G_BA; the discriminators score [real, pooled fake] in one call. Instance norm is per
image, so the numbers are those of separate calls (up to float reassociation).
"""
from __future__ import annotations

import contextlib
import itertools

import torch
from torch import nn

from .config import CycleGANConfig
from .losses import TERM_NAMES, discriminator_loss, generator_terms
from .model import CycleGAN
from .pool import ImagePool

LOSS_NAMES = ("G_total", *TERM_NAMES, "D_A", "D_B")


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """1 for the first n_epochs epochs (0-based `epoch`), then linearly towards 0 over n_epochs_decay."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


class GeneratorPass(nn.Module):
    """Every generator output of one step, in two rounds of calls (one module, so DDP sees one forward)."""

    def __init__(self, G_AB: nn.Module, G_BA: nn.Module, with_identity: bool):
        super().__init__()
        self.G_AB, self.G_BA, self.with_identity = G_AB, G_BA, with_identity

    def forward(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        n = real_A.shape[0]
        if self.with_identity:
            fake_B, idt_B = self.G_AB(torch.cat([real_A, real_B])).split(n)
            fake_A, idt_A = self.G_BA(torch.cat([real_B, real_A])).split(n)
        else:
            fake_B, idt_B = self.G_AB(real_A), None
            fake_A, idt_A = self.G_BA(real_B), None
        return {"fake_B": fake_B, "fake_A": fake_A, "idt_A": idt_A, "idt_B": idt_B,
                "rec_A": self.G_BA(fake_B), "rec_B": self.G_AB(fake_A)}


class DiscriminatorPass(nn.Module):
    """Both discriminators on [real, fake] at once; returns (real A, fake A, real B, fake B) score maps."""

    def __init__(self, D_A: nn.Module, D_B: nn.Module):
        super().__init__()
        self.D_A, self.D_B = D_A, D_B

    def forward(self, real_A, fake_A, real_B, fake_B):
        sr_A, sf_A = self.D_A(torch.cat([real_A, fake_A])).split([real_A.shape[0], fake_A.shape[0]])
        sr_B, sf_B = self.D_B(torch.cat([real_B, fake_B])).split([real_B.shape[0], fake_B.shape[0]])
        return sr_A, sf_A, sr_B, sf_B


class Trainer:
    """Owns the optimizers and pools of a CycleGAN with discriminators and runs training steps.

    The loss weights and switches are the model's config (`model.config`, a CycleGANConfig): the generator
    objective is `cyclegan.losses.generator_terms` on this step's outputs."""

    def __init__(self, model: CycleGAN, *, lr: float = 2e-4, betas=(0.5, 0.999),
                 pool_size: int = 50, seed: int = 0, device: torch.device | str = "cpu", bf16: bool = False,
                 channels_last: bool = False, distributed: bool = False):
        if not model.with_discriminators:
            raise ValueError("training needs a CycleGAN built with with_discriminators=True")
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.config = model.config
        self.size_multiple, self.min_side = model.config.size_multiple, model.config.min_side
        self.bf16 = bf16
        use_identity = model.config.lambda_identity > 0
        self.gen_pass: nn.Module = GeneratorPass(model.G_AB, model.G_BA, use_identity)
        self.disc_pass: nn.Module = DiscriminatorPass(model.D_A, model.D_B)
        self.distributed = distributed
        if distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.gen_pass = DDP(self.gen_pass, device_ids=ids)
            self.disc_pass = DDP(self.disc_pass, device_ids=ids)
        fused = self.device.type == "cuda"
        self.opt_G = torch.optim.Adam(itertools.chain(model.G_AB.parameters(), model.G_BA.parameters()), lr=lr,
                                      betas=betas, foreach=not fused, fused=fused or None)
        self.opt_D = torch.optim.Adam(itertools.chain(model.D_A.parameters(), model.D_B.parameters()), lr=lr,
                                      betas=betas, foreach=not fused, fused=fused or None)
        self.pool_A = ImagePool(pool_size, seed=seed * 2 + 1)  # fakes of A, for D_A
        self.pool_B = ImagePool(pool_size, seed=seed * 2 + 2)  # fakes of B, for D_B

    def set_lr(self, lr: float) -> None:
        for opt in (self.opt_G, self.opt_D):
            for group in opt.param_groups:
                group["lr"] = lr

    def _autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple or min(h, w) < self.min_side:
            raise ValueError(f"training images are {w}x{h}; this architecture needs sides that are multiples of "
                             f"{self.size_multiple} and at least {self.min_side} (config.size_multiple, "
                             f"config.min_side): choose another crop size")
        return x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def _check_finite(self, losses: torch.Tensor) -> torch.Tensor:
        """Averages the loss values over ranks and stops every rank if any is NaN or inf."""
        if self.distributed:
            import torch.distributed as dist
            losses = losses.detach().clone()
            dist.all_reduce(losses)
            losses /= dist.get_world_size()
        if not torch.isfinite(losses).all():
            raise FloatingPointError("a loss became NaN or inf; training stopped before the weights were updated")
        return losses

    def train_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, float]:
        cfg, m = self.config, self.model
        real_A, real_B = self._prepare(real_A), self._prepare(real_B)
        zero = real_A.new_zeros(())

        # ---- generators: G_AB and G_BA ----
        for p in itertools.chain(m.D_A.parameters(), m.D_B.parameters()):
            p.requires_grad_(False)
        with self._autocast():
            out = self.gen_pass(real_A, real_B)
            scores = {}
            if cfg.use_gan:  # the discriminators judge the translations (adversarial terms)
                scores = {"fake_scores_B": m.D_B(out["fake_B"]), "fake_scores_A": m.D_A(out["fake_A"])}
        terms = generator_terms(cfg, real_A=real_A, real_B=real_B, rec_A=out["rec_A"], rec_B=out["rec_B"],
                                idt_A=out["idt_A"], idt_B=out["idt_B"], **scores)
        loss_G = sum(terms.values())

        # ---- discriminators: D_A and D_B, on history-pool fakes ----
        for p in itertools.chain(m.D_A.parameters(), m.D_B.parameters()):
            p.requires_grad_(True)
        if cfg.use_gan:
            fake_A = self.pool_A.query(out["fake_A"].detach())
            fake_B = self.pool_B.query(out["fake_B"].detach())
            with self._autocast():
                sr_A, sf_A, sr_B, sf_B = self.disc_pass(real_A, fake_A, real_B, fake_B)
            loss_D_A = discriminator_loss(sr_A.float(), sf_A.float())
            loss_D_B = discriminator_loss(sr_B.float(), sf_B.float())
        else:
            loss_D_A = loss_D_B = zero

        values = torch.stack([loss_G, *terms.values(), loss_D_A, loss_D_B]).detach()
        values = self._check_finite(values)

        self.opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        self.opt_G.step()
        if cfg.use_gan:
            self.opt_D.zero_grad(set_to_none=True)
            (loss_D_A + loss_D_B).backward()
            self.opt_D.step()
        return dict(zip(LOSS_NAMES, values.tolist()))

    # ---- state for checkpoints ----
    def state_dict(self) -> dict:
        """Everything a resume needs: the config (architecture and objective), weights, optimizers, pools."""
        return {"config": self.config.to_dict(), "model": self.model.state_dict(), "opt_G": self.opt_G.state_dict(),
                "opt_D": self.opt_D.state_dict(), "pool_A": self.pool_A.state_dict(),
                "pool_B": self.pool_B.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restores `state_dict()`'s output. Raises ValueError (one line) when the checkpoint's config differs
        from this model's, naming each field (checkpoints written before the config was saved are not checked)."""
        if "config" in state:
            diff = CycleGANConfig.from_dict(state["config"]).differences(self.config)
            if diff:
                raise ValueError("the checkpoint was trained with another config: " + ", ".join(
                    f"{k} {saved!r} in the checkpoint vs {now!r} now" for k, (saved, now) in diff.items()))
        self.model.load_weights(state["model"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.pool_A.load_state_dict(state["pool_A"], self.device)
        self.pool_B.load_state_dict(state["pool_B"], self.device)
