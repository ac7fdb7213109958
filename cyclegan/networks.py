"""The networks of CycleGAN (arXiv 1703.10593, appendix 7.2).

The layer order of `ResnetGenerator` and `PatchDiscriminator` follows the reference implementation's
`nn.Sequential` layout, so their state dicts carry the same names and shapes (see
tests/reference/*.json) and its released generators load into them unchanged.
"""
from __future__ import annotations

import torch
from torch import nn


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    # No affine parameters and no running statistics: every image is normalised by its own statistics,
    # in training and at test time alike.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """Two 3x3 convs with reflection padding; x + block(x), with no ReLU after the add."""

    def __init__(self, dim: int, use_dropout: bool = False):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), instance_norm(dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), instance_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-3, tanh."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 use_dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), instance_norm(ngf),
                                   nn.ReLU(True)]
        ch = ngf
        for _ in range(2):  # downsampling
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), instance_norm(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResnetBlock(ch, use_dropout) for _ in range(n_blocks)]
        for _ in range(2):  # upsampling
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                       instance_norm(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetBlock(nn.Module):
    """One level of a U-Net: down, the inner levels, up, and a skip connection around them."""

    def __init__(self, outer: int, inner: int, submodule: nn.Module | None = None, outermost: bool = False,
                 in_channels: int | None = None, use_dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        in_channels = in_channels or outer
        down = [nn.Conv2d(in_channels, inner, 4, stride=2, padding=1)]
        if not outermost:
            down = [nn.LeakyReLU(0.2, True)] + down + ([instance_norm(inner)] if submodule is not None else [])
        up_in = inner if submodule is None else inner * 2
        up: list[nn.Module] = [nn.ReLU(True), nn.ConvTranspose2d(up_in, outer, 4, stride=2, padding=1)]
        up += [nn.Tanh()] if outermost else [instance_norm(outer)] + ([nn.Dropout(0.5)] if use_dropout else [])
        middle = [submodule] if submodule is not None else []
        self.model = nn.Sequential(*down, *middle, *up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net with `num_downs` halvings (8 for 256x256 inputs); input sides must be multiples of 2**num_downs."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, num_downs: int = 8,
                 use_dropout: bool = False):
        super().__init__()
        if num_downs < 5:
            raise ValueError("a U-Net generator needs num_downs >= 5")
        block = UnetBlock(ngf * 8, ngf * 8)
        for _ in range(num_downs - 5):
            block = UnetBlock(ngf * 8, ngf * 8, block, use_dropout=use_dropout)
        for mult in (4, 2, 1):
            block = UnetBlock(ngf * mult, ngf * mult * 2, block)
        self.model = UnetBlock(out_channels, ngf, block, outermost=True, in_channels=in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: C64-C128-C256-C512 4x4 convs (stride 2, 2, 2... then 1), then a 1-channel conv.

    With `n_layers=3` each output score sees a 70x70 patch; a 256x256 input gives a 30x30 map of raw
    scores (no sigmoid: the least-squares loss compares them with 1 and 0 directly).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1), instance_norm(ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """The paper's initialisation: conv weights from N(0, gain), biases 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def build_generator(netG: str = "resnet", ngf: int = 64, n_blocks: int = 9, use_dropout: bool = False) -> nn.Module:
    """`netG` is "resnet" (n_blocks residual blocks, 9 or 6 in the paper) or "unet" (n_blocks halvings)."""
    if netG == "resnet":
        return ResnetGenerator(ngf=ngf, n_blocks=n_blocks, use_dropout=use_dropout)
    if netG == "unet":
        return UnetGenerator(ngf=ngf, num_downs=n_blocks, use_dropout=use_dropout)
    raise ValueError(f"unknown generator architecture {netG!r}: use 'resnet' or 'unet'")
