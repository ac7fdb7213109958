"""The straightforward CycleGAN training step, in the reference implementation's order, as a baseline.

Six generator forwards (G_AB(a), G_BA(G_AB(a)), G_BA(b), G_AB(G_BA(b)), G_BA(a), G_AB(b)), six discriminator
forwards, two backward passes, two optimizer steps, plain eager float32. `bench/train_step.py` times it
against `cyclegan.training.Trainer.train_step`, and tests/test_training.py checks both compute the same.
"""
from __future__ import annotations

import itertools

import torch

from cyclegan.losses import LossWeights, cycle_loss, discriminator_loss, identity_loss, lsgan
from cyclegan.model import CycleGAN
from cyclegan.pool import ImagePool


class BaselineStep:
    def __init__(self, model: CycleGAN, weights: LossWeights, lr=2e-4, betas=(0.5, 0.999), pool_size=50, seed=0):
        self.m, self.w = model, weights
        self.opt_G = torch.optim.Adam(itertools.chain(model.G_AB.parameters(), model.G_BA.parameters()),
                                      lr=lr, betas=betas, foreach=False)
        self.opt_D = torch.optim.Adam(itertools.chain(model.D_A.parameters(), model.D_B.parameters()),
                                      lr=lr, betas=betas, foreach=False)
        self.pool_A = ImagePool(pool_size, seed=seed * 2 + 1)
        self.pool_B = ImagePool(pool_size, seed=seed * 2 + 2)

    def __call__(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, float]:
        m, w = self.m, self.w
        fake_B = m.G_AB(real_A)
        rec_A = m.G_BA(fake_B)
        fake_A = m.G_BA(real_B)
        rec_B = m.G_AB(fake_A)
        # generators
        for p in itertools.chain(m.D_A.parameters(), m.D_B.parameters()):
            p.requires_grad = False
        self.opt_G.zero_grad()
        idt_A = w.lambda_identity * w.lambda_A * identity_loss(m.G_BA(real_A), real_A)
        idt_B = w.lambda_identity * w.lambda_B * identity_loss(m.G_AB(real_B), real_B)
        gan_AB = lsgan(m.D_B(fake_B), True)
        gan_BA = lsgan(m.D_A(fake_A), True)
        cycle_A = w.lambda_A * cycle_loss(rec_A, real_A)
        cycle_B = w.lambda_B * cycle_loss(rec_B, real_B)
        loss_G = gan_AB + gan_BA + cycle_A + cycle_B + idt_A + idt_B
        loss_G.backward()
        self.opt_G.step()
        # discriminators
        for p in itertools.chain(m.D_A.parameters(), m.D_B.parameters()):
            p.requires_grad = True
        self.opt_D.zero_grad()
        pooled_B = self.pool_B.query(fake_B)
        loss_D_B = discriminator_loss(m.D_B(real_B), m.D_B(pooled_B.detach()))
        loss_D_B.backward()
        pooled_A = self.pool_A.query(fake_A)
        loss_D_A = discriminator_loss(m.D_A(real_A), m.D_A(pooled_A.detach()))
        loss_D_A.backward()
        self.opt_D.step()
        return {"G_total": loss_G.item(), "gan_AB": gan_AB.item(), "gan_BA": gan_BA.item(), "cycle_A": cycle_A.item(),
                "cycle_B": cycle_B.item(), "idt_A": idt_A.item(), "idt_B": idt_B.item(), "D_A": loss_D_A.item(),
                "D_B": loss_D_B.item()}
