"""CycleGAN's loss terms (arXiv 1703.10593, section 3), one small function each.

Generator objective (what G_AB and G_BA minimise together, six terms):
    gan_AB   = lsgan(D_B(G_AB(a)), real)                 adversarial, A -> B
    gan_BA   = lsgan(D_A(G_BA(b)), real)                 adversarial, B -> A
    cycle_A  = lambda_A * |G_BA(G_AB(a)) - a|            forward cycle consistency
    cycle_B  = lambda_B * |G_AB(G_BA(b)) - b|            backward cycle consistency
    idt_A    = lambda_identity * lambda_A * |G_BA(a) - a|    identity, G_BA fed its own domain
    idt_B    = lambda_identity * lambda_B * |G_AB(b) - b|    identity, G_AB fed its own domain
Each discriminator: (lsgan(D(real), real) + lsgan(D(fake), fake)) / 2.
"""
from __future__ import annotations

from dataclasses import dataclass, asdict

import torch
import torch.nn.functional as F


@dataclass
class LossWeights:
    """Weights of the loss terms. Switches reproduce the paper's ablations (Table 4) one flag each."""
    lambda_A: float = 10.0          # forward cycle A -> B -> A
    lambda_B: float = 10.0          # backward cycle B -> A -> B
    lambda_identity: float = 0.5    # identity weight, as a fraction of lambda_A / lambda_B; 0 turns it off
    use_gan: bool = True            # both adversarial terms
    use_cycle_A: bool = True        # forward cycle
    use_cycle_B: bool = True        # backward cycle

    def to_dict(self) -> dict:
        return asdict(self)


def lsgan(scores: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean squared distance of the patch scores from 1 (real) or 0 (fake)."""
    target = torch.ones_like(scores) if target_is_real else torch.zeros_like(scores)
    return F.mse_loss(scores, target)


def cycle_loss(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Cycle consistency: mean absolute difference between x and F(G(x))."""
    return F.l1_loss(reconstruction, original)


def identity_loss(same_domain_output: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Identity: a generator fed an image of its target domain should leave it unchanged."""
    return F.l1_loss(same_domain_output, original)


def discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """(real + fake) / 2, halved so the discriminator learns at half the generator's rate."""
    return 0.5 * (lsgan(scores_real, True) + lsgan(scores_fake, False))
