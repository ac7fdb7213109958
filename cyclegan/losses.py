"""CycleGAN's loss terms (arXiv 1703.10593, section 3), and the generator objective in one function.

Generator objective (what G_AB and G_BA minimise together, six terms; `generator_terms` computes them):
    gan_AB   = lsgan(D_B(G_AB(a)), real)                 adversarial, A -> B           (use_gan)
    gan_BA   = lsgan(D_A(G_BA(b)), real)                 adversarial, B -> A           (use_gan)
    cycle_A  = lambda_A * |G_BA(G_AB(a)) - a|            forward cycle consistency     (use_cycle_A)
    cycle_B  = lambda_B * |G_AB(G_BA(b)) - b|            backward cycle consistency    (use_cycle_B)
    idt_A    = lambda_identity * lambda_A * |G_BA(a) - a|    identity, G_BA fed its own domain (lambda_identity > 0)
    idt_B    = lambda_identity * lambda_B * |G_AB(b) - b|    identity, G_AB fed its own domain
Each discriminator: (lsgan(D(real), real) + lsgan(D(fake), fake)) / 2.
The weights and switches live in `cyclegan.config.CycleGANConfig` only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import CycleGANConfig

TERM_NAMES = ("gan_AB", "gan_BA", "cycle_A", "cycle_B", "idt_A", "idt_B")
# The terms of one direction of translation, as (adversarial, cycle, identity) names.
DIRECTION_TERMS = {"AtoB": ("gan_AB", "cycle_A", "idt_A"), "BtoA": ("gan_BA", "cycle_B", "idt_B")}


def lsgan(scores: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean squared distance of the patch scores from 1 (real) or 0 (fake)."""
    target = torch.ones_like(scores) if target_is_real else torch.zeros_like(scores)
    return F.mse_loss(scores, target)


def cycle_loss(reconstruction: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Cycle consistency, unweighted: mean absolute difference between x and F(G(x))."""
    return F.l1_loss(reconstruction, original)


def identity_loss(same_domain_output: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Identity, unweighted: a generator fed an image of its target domain should leave it unchanged."""
    return F.l1_loss(same_domain_output, original)


def discriminator_loss(scores_real: torch.Tensor, scores_fake: torch.Tensor) -> torch.Tensor:
    """(real + fake) / 2, halved so the discriminator learns at half the generator's rate."""
    return 0.5 * (lsgan(scores_real, True) + lsgan(scores_fake, False))


def term_weights(config: CycleGANConfig) -> dict[str, float]:
    """The factor in front of each generator term (TERM_NAMES order); 0.0 for a switched-off term:
    gan_* 1 (use_gan), cycle_A lambda_A (use_cycle_A), cycle_B lambda_B (use_cycle_B),
    idt_A lambda_identity * lambda_A, idt_B lambda_identity * lambda_B (the paper's identity weight is a
    fraction of the cycle weight; reference implementation, models/cycle_gan_model.py)."""
    gan = 1.0 if config.use_gan else 0.0
    return {"gan_AB": gan, "gan_BA": gan,
            "cycle_A": config.lambda_A if config.use_cycle_A else 0.0,
            "cycle_B": config.lambda_B if config.use_cycle_B else 0.0,
            "idt_A": config.lambda_identity * config.lambda_A,
            "idt_B": config.lambda_identity * config.lambda_B}


def direction_terms(config: CycleGANConfig, direction: str, real: torch.Tensor, *,
                    rec: torch.Tensor | None = None, idt: torch.Tensor | None = None,
                    fake_scores: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The three generator terms of one direction, weighted as `config` says.

    direction "AtoB" (G = G_AB, F = G_BA, D = D_B) gives gan_AB, cycle_A, idt_A; "BtoA" (G = G_BA, F = G_AB,
    D = D_A) gives gan_BA, cycle_B, idt_B. Inputs (NCHW, pixels in [-1, 1]; any float dtype, computed in float32):
      real         x, images of the direction's source domain
      rec          F(G(x)), the reconstruction (cycle term)
      idt          F(x), the other generator fed x, an image of its own target domain (identity term)
      fake_scores  D(G(x)), the target domain's PatchGAN score map on the translation (adversarial term)
    Returns 0-dim float32 tensors keyed by name (mean over the batch and pixels): a switched-off term
    (weight 0 in `term_weights`) is exactly 0 and its input may be None; a term that is on but whose input is
    None is left out of the result (e.g. the adversarial term of a model without discriminators)."""
    if direction not in DIRECTION_TERMS:
        raise ValueError(f"direction must be one of {tuple(DIRECTION_TERMS)}, got {direction!r}")
    gan_name, cycle_name, idt_name = DIRECTION_TERMS[direction]
    w = term_weights(config)
    real = real.float()
    zero = real.new_zeros(())
    out: dict[str, torch.Tensor] = {}
    if w[gan_name] == 0.0:
        out[gan_name] = zero
    elif fake_scores is not None:
        out[gan_name] = w[gan_name] * lsgan(fake_scores.float(), True)           # adversarial: D(G(x)) -> 1
    if w[cycle_name] == 0.0:
        out[cycle_name] = zero
    elif rec is not None:
        out[cycle_name] = w[cycle_name] * cycle_loss(rec.float(), real)          # cycle: F(G(x)) -> x
    if w[idt_name] == 0.0:
        out[idt_name] = zero
    elif idt is not None:
        out[idt_name] = w[idt_name] * identity_loss(idt.float(), real)           # identity: F(x) -> x
    return out


def generator_terms(config: CycleGANConfig, *, real_A: torch.Tensor, real_B: torch.Tensor,
                    rec_A: torch.Tensor | None = None, rec_B: torch.Tensor | None = None,
                    idt_A: torch.Tensor | None = None, idt_B: torch.Tensor | None = None,
                    fake_scores_B: torch.Tensor | None = None,
                    fake_scores_A: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The six named generator terms of the paper (TERM_NAMES order), from the networks' outputs:

      rec_A = G_BA(G_AB(real_A)), rec_B = G_AB(G_BA(real_B))       cycle reconstructions
      idt_A = G_BA(real_A),       idt_B = G_AB(real_B)               identity outputs
      fake_scores_B = D_B(G_AB(real_A)), fake_scores_A = D_A(G_BA(real_B))   PatchGAN scores on the fakes

    The generators' loss is the sum of the values. `direction_terms` gives one direction's three; the rules
    for switched-off terms and missing inputs are the same. Source: arXiv 1703.10593, eq. 3 (full
    objective), section 5.2 (identity loss), Table 4 (the ablations the switches reproduce)."""
    terms = {**direction_terms(config, "AtoB", real_A, rec=rec_A, idt=idt_A, fake_scores=fake_scores_B),
             **direction_terms(config, "BtoA", real_B, rec=rec_B, idt=idt_B, fake_scores=fake_scores_A)}
    return {name: terms[name] for name in TERM_NAMES if name in terms}
