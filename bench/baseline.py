"""The straightforward CycleGAN training step, in the reference implementation's order, as a baseline.

Six generator forwards (G_AB(a), G_BA(G_AB(a)), G_BA(b), G_AB(G_BA(b)), G_BA(a), G_AB(b)), six discriminator
forwards, two backward passes, two optimizer steps, plain eager float32. `bench/train_step.py` times it
against `cyclegan.training.Trainer.train_step`, and tests/test_training.py checks both compute the same.
"""
from __future__ import annotations

import itertools

import torch

from cyclegan.losses import discriminator_loss, generator_terms
from cyclegan.model import CycleGAN
from cyclegan.pool import ImagePool


class BaselineStep:
    """One training step per call, in the reference order; loss weights and switches from `model.config`."""

    def __init__(self, model: CycleGAN, *, lr=2e-4, betas=(0.5, 0.999), pool_size=50, seed=0):
        self.m = model
        self.opt_G = torch.optim.Adam(itertools.chain(model.G_AB.parameters(), model.G_BA.parameters()),
                                      lr=lr, betas=betas, foreach=False)
        self.opt_D = torch.optim.Adam(itertools.chain(model.D_A.parameters(), model.D_B.parameters()),
                                      lr=lr, betas=betas, foreach=False)
        self.pool_A = ImagePool(pool_size, seed=seed * 2 + 1)
        self.pool_B = ImagePool(pool_size, seed=seed * 2 + 2)

    def __call__(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, float]:
        m, cfg = self.m, self.m.config
        fake_B = m.G_AB(real_A)
        rec_A = m.G_BA(fake_B)
        fake_A = m.G_BA(real_B)
        rec_B = m.G_AB(fake_A)
        # generators
        for p in itertools.chain(m.D_A.parameters(), m.D_B.parameters()):
            p.requires_grad = False
        self.opt_G.zero_grad()
        terms = generator_terms(cfg, real_A=real_A, real_B=real_B, rec_A=rec_A, rec_B=rec_B,
                                idt_A=m.G_BA(real_A) if cfg.lambda_identity > 0 else None,
                                idt_B=m.G_AB(real_B) if cfg.lambda_identity > 0 else None,
                                fake_scores_B=m.D_B(fake_B) if cfg.use_gan else None,
                                fake_scores_A=m.D_A(fake_A) if cfg.use_gan else None)
        loss_G = sum(terms.values())
        loss_G.backward()
        self.opt_G.step()
        # discriminators
        for p in itertools.chain(m.D_A.parameters(), m.D_B.parameters()):
            p.requires_grad = True
        loss_D_A = loss_D_B = torch.zeros(())
        if cfg.use_gan:
            self.opt_D.zero_grad()
            pooled_B = self.pool_B.query(fake_B)
            loss_D_B = discriminator_loss(m.D_B(real_B), m.D_B(pooled_B.detach()))
            loss_D_B.backward()
            pooled_A = self.pool_A.query(fake_A)
            loss_D_A = discriminator_loss(m.D_A(real_A), m.D_A(pooled_A.detach()))
            loss_D_A.backward()
            self.opt_D.step()
        return {"G_total": loss_G.item(), **{k: v.item() for k, v in terms.items()}, "D_A": loss_D_A.item(),
                "D_B": loss_D_B.item()}
