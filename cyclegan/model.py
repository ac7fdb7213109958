"""`CycleGAN`: both generators (and optionally both discriminators) of one unpaired translation.

    from cyclegan import CycleGAN
    model = CycleGAN.from_pretrained("path/or/user-repo")      # strict, safetensors only
    zebra = model.G_AB(horse)                                    # NCHW float in [-1, 1]

The constructor's arguments are the architecture; `save_pretrained` writes them to config.json and the
weights to model.safetensors, `push_to_hub` publishes both (huggingface_hub's PyTorchModelHubMixin).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from safetensors.torch import load_file
from torch import nn

from .networks import PatchDiscriminator, build_generator, init_weights

DIRECTIONS = ("AtoB", "BtoA")


class CycleGAN(nn.Module, PyTorchModelHubMixin, library_name="cyclegan", pipeline_tag="image-to-image",
               license="mit", tags=["cyclegan", "image-to-image", "unpaired-image-translation", "pytorch"]):
    """G_AB: A -> B, G_BA: B -> A; D_A tells real A from G_BA(b), D_B real B from G_AB(a).

    Loss weights travel with the model (config.json) so that a viewer can weigh the terms as training did.
    """

    def __init__(self, name_A: str = "A", name_B: str = "B", netG: str = "resnet", ngf: int = 64,
                 n_blocks: int = 9, use_dropout: bool = False, with_discriminators: bool = False, ndf: int = 64,
                 n_layers_D: int = 3, lambda_A: float = 10.0, lambda_B: float = 10.0, lambda_identity: float = 0.5):
        super().__init__()
        self.name_A, self.name_B = name_A, name_B
        self.netG, self.ngf, self.n_blocks, self.use_dropout = netG, ngf, n_blocks, use_dropout
        self.with_discriminators, self.ndf, self.n_layers_D = with_discriminators, ndf, n_layers_D
        self.lambda_A, self.lambda_B, self.lambda_identity = lambda_A, lambda_B, lambda_identity
        self.G_AB = init_weights(build_generator(netG, ngf, n_blocks, use_dropout))
        self.G_BA = init_weights(build_generator(netG, ngf, n_blocks, use_dropout))
        if with_discriminators:
            self.D_A = init_weights(PatchDiscriminator(ndf=ndf, n_layers=n_layers_D))
            self.D_B = init_weights(PatchDiscriminator(ndf=ndf, n_layers=n_layers_D))
        else:
            self.D_A = self.D_B = None
        self.source = "new (random weights)"  # where the weights came from; set by from_pretrained

    @property
    def config(self) -> dict:
        return dict(name_A=self.name_A, name_B=self.name_B, netG=self.netG, ngf=self.ngf, n_blocks=self.n_blocks,
                    use_dropout=self.use_dropout, with_discriminators=self.with_discriminators, ndf=self.ndf,
                    n_layers_D=self.n_layers_D, lambda_A=self.lambda_A, lambda_B=self.lambda_B,
                    lambda_identity=self.lambda_identity)

    # -- directions -------------------------------------------------------------------------------------
    def direction_label(self, direction: str) -> str:
        """"AtoB" -> "horse -> zebra" with the model's domain names."""
        src, dst = (self.name_A, self.name_B) if check_direction(direction) == "AtoB" else (self.name_B, self.name_A)
        return f"{src} -> {dst}"

    def generators(self, direction: str) -> tuple[nn.Module, nn.Module]:
        """(G, F) for a direction: G translates, F maps back (and is the identity generator for inputs of G)."""
        return (self.G_AB, self.G_BA) if check_direction(direction) == "AtoB" else (self.G_BA, self.G_AB)

    def discriminator_of_target(self, direction: str) -> nn.Module | None:
        """The discriminator that judges G's outputs: D_B for A -> B, D_A for B -> A."""
        return self.D_B if check_direction(direction) == "AtoB" else self.D_A

    def forward(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        return self.generators(direction)[0](x)

    # -- publishing and loading ---------------------------------------------------------------------------
    def without_discriminators(self) -> "CycleGAN":
        """A model sharing this one's generators, with no discriminators (what a published model holds)."""
        if not self.with_discriminators:
            return self
        cfg = dict(self.config, with_discriminators=False)
        light = CycleGAN(**cfg)
        light.G_AB, light.G_BA = self.G_AB, self.G_BA
        return light

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None = None, cache_dir=None,
                         force_download: bool = False, local_files_only: bool = False, token=None,
                         map_location: str = "cpu", strict: bool = True, **kwargs):
        # Safetensors only (never unpickle a file from someone else) and always strict.
        filename = "model.safetensors"
        if os.path.isdir(model_id):
            path = Path(model_id) / filename
            if not path.is_file():
                raise FileNotFoundError(_no_safetensors(model_id))
            source = f"local folder {os.path.abspath(model_id)}"
        else:
            try:
                path = hf_hub_download(model_id, filename, revision=revision, cache_dir=cache_dir,
                                       force_download=force_download, local_files_only=local_files_only,
                                       token=token)
            except EntryNotFoundError:
                raise FileNotFoundError(_no_safetensors(model_id)) from None
            commit = Path(path).parent.name
            source = f"Hub repo {model_id} (revision {revision or 'main'}, commit {commit[:12]})"
        init_args = {k: v for k, v in kwargs.items() if k in _init_arg_names()}
        model = cls(**init_args)
        model.load_weights(load_file(str(path), device=str(map_location)))
        model.source = source
        return model.eval()

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Strict load: any missing, unexpected or mis-shaped tensor is an error that names it."""
        own = self.state_dict()
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        wrong = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in sorted(set(own) & set(state_dict)) if state_dict[k].shape != own[k].shape]
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append(f"missing tensors: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
            if unexpected:
                parts.append(f"unexpected tensors: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
            if wrong:
                parts.append(f"mis-shaped tensors: {'; '.join(wrong[:8])}")
            raise ValueError("checkpoint does not match the model's config: " + " | ".join(parts))
        self.load_state_dict(state_dict, strict=True)


def _init_arg_names() -> set[str]:
    import inspect
    return set(inspect.signature(CycleGAN.__init__).parameters) - {"self"}


def _no_safetensors(where: str) -> str:
    return (f"{where} has no model.safetensors. CycleGAN loads safetensors weights only and refuses pickle files "
            f"(pytorch_model.bin, .pth): they can run arbitrary code. A reference-implementation .pth can be "
            f"converted with `python -m cyclegan.convert`.")


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return direction
