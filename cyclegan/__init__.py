"""CycleGAN (Zhu et al. 2017, arXiv 1703.10593) in compact PyTorch."""
from .losses import LossWeights
from .model import CycleGAN
from .networks import PatchDiscriminator, ResnetGenerator, UnetGenerator

__all__ = ["CycleGAN", "LossWeights", "PatchDiscriminator", "ResnetGenerator", "UnetGenerator"]
__version__ = "0.1.0"
