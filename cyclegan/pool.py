"""History pool (Shrivastava et al. 2017): discriminators see a mix of current and earlier fakes."""
from __future__ import annotations

import torch


class ImagePool:
    """Keeps up to `size` generated images. Once full, each new image is, with probability 1/2, swapped
    for a stored one (which goes to the discriminator instead); otherwise it passes straight through.

    The pool draws from its own `torch.Generator`, so its choices are saved and restored with a checkpoint.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                i = int(torch.randint(len(self.images), (), generator=self.generator))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"generator": self.generator.get_state()}
        if self.images:
            state["images"] = torch.cat(self.images, 0).cpu()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> None:
        self.generator.set_state(state["generator"])
        images = state.get("images")
        self.images = [] if images is None else [im.unsqueeze(0).to(device) for im in images]
