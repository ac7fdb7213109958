"""The architecture: the paper's layers, the reference implementation's state-dict layout."""
import json

import pytest
import torch
from torch import nn

from conftest import ROOT
from cyclegan import CycleGAN, PatchDiscriminator, ResnetGenerator, UnetGenerator
from cyclegan.networks import init_weights

REFERENCE = ROOT / "tests" / "reference"  # the manifests, copied into the repository


def manifest(name: str) -> list[tuple[str, list[int]]]:
    return [(e["name"], e["shape"]) for e in json.loads((REFERENCE / name).read_text())["state_dict"]]


def layout(module: nn.Module) -> list[tuple[str, list[int]]]:
    return [(k, list(v.shape)) for k, v in module.state_dict().items()]


def test_default_generator_matches_reference_state_dict():
    model = CycleGAN()
    expected = manifest("official_resnet9_generator.json")
    assert layout(model.G_AB) == expected
    assert layout(model.G_BA) == expected
    assert sum(p.numel() for p in model.G_AB.parameters()) == 11_378_179


def test_default_discriminator_matches_reference_state_dict():
    model = CycleGAN(with_discriminators=True)
    expected = manifest("official_patchgan70_discriminator.json")
    assert layout(model.D_A) == expected and layout(model.D_B) == expected
    assert sum(p.numel() for p in model.D_A.parameters()) == 2_764_737


def test_patchgan_output_is_a_map_of_raw_scores():
    d = PatchDiscriminator()
    with torch.no_grad():
        assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
        assert d(torch.zeros(1, 3, 128, 128)).shape == (1, 1, 14, 14)
    assert not isinstance(list(d.model)[-1], (nn.Sigmoid, nn.Tanh))


def test_instance_norm_has_no_parameters_or_running_statistics():
    g = ResnetGenerator(ngf=8, n_blocks=2)
    norms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(not m.affine and not m.track_running_stats for m in norms)
    assert not any("running" in k for k in g.state_dict())
    # every image is normalised on its own: a batch gives the same outputs as single images
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(g(x), torch.cat([g(x[:1]), g(x[1:])]), atol=1e-5, rtol=1e-5)


def test_residual_block_has_no_relu_after_the_add():
    g = ResnetGenerator(ngf=4, n_blocks=1)
    block = g.model[10]
    assert isinstance(list(block.conv_block)[-1], nn.InstanceNorm2d)
    with torch.no_grad():  # a block whose convs output zero is the identity, negative values included
        for m in block.conv_block.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_(); m.bias.zero_()
        x = torch.randn(1, 16, 8, 8)
        assert torch.equal(block(x), x)


@pytest.mark.parametrize("n_blocks", [6, 9])
def test_generator_shapes_and_range(n_blocks):
    g = ResnetGenerator(ngf=8, n_blocks=n_blocks)
    with torch.no_grad():
        y = g(torch.rand(1, 3, 36, 52) * 2 - 1)
    assert y.shape == (1, 3, 36, 52)
    assert y.abs().max() <= 1
    assert sum(1 for k in g.state_dict() if k.endswith("conv_block.1.weight")) == n_blocks


def test_unet_option():
    g = UnetGenerator(ngf=8, num_downs=5)
    with torch.no_grad():
        assert g(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    model = CycleGAN(netG="unet", ngf=8, n_blocks=5)
    assert isinstance(model.G_AB, UnetGenerator)


def test_init_is_normal_with_std_002():
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(), 0.02)
    w = g.model[10].conv_block[1].weight
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    assert torch.count_nonzero(g.model[1].bias) == 0


def test_direction_helpers_use_domain_names():
    m = CycleGAN(name_A="horse", name_B="zebra", ngf=8, n_blocks=1)
    assert m.direction_label("AtoB") == "horse -> zebra"
    assert m.direction_label("BtoA") == "zebra -> horse"
    assert m.generators("BtoA") == (m.G_BA, m.G_AB)
    with pytest.raises(ValueError, match="direction"):
        m.generators("sideways")


def test_strict_loading_names_the_offending_tensor(tmp_path):
    m = CycleGAN(ngf=8, n_blocks=2)
    sd = m.state_dict()
    bad = dict(sd)
    bad.pop("G_AB.model.1.bias")
    with pytest.raises(ValueError, match=r"missing tensors: G_AB\.model\.1\.bias"):
        m.load_weights(bad)
    with pytest.raises(ValueError, match=r"unexpected tensors: extra\.weight"):
        m.load_weights({**sd, "extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"mis-shaped tensors: G_BA\.model\.1\.weight"):
        m.load_weights({**sd, "G_BA.model.1.weight": torch.zeros(8, 3, 3, 3)})


def test_save_and_load_pretrained_roundtrip(tmp_path):
    m = CycleGAN(name_A="cat", name_B="dog", ngf=8, n_blocks=2, lambda_A=7.0)
    m.save_pretrained(tmp_path / "m")
    back = CycleGAN.from_pretrained(tmp_path / "m")
    assert (back.name_A, back.name_B, back.ngf, back.n_blocks, back.lambda_A) == ("cat", "dog", 8, 2, 7.0)
    assert back.D_A is None
    for k, v in m.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
