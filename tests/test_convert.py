"""cyclegan.convert: the reference implementation's released generators -> one CycleGAN.

The reference generator is re-implemented here from scratch with torch.nn.functional, driven only by the
state-dict names of the reference layout (tests/reference/official_resnet9_generator.json), so that the
converted model's outputs are checked against an implementation that shares no code with cyclegan.networks.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from cyclegan import CycleGAN
from cyclegan import convert
from cyclegan.card import card_metadata
from hub_server import hub_server  # noqa: F401  (pytest fixture)
from released_mirror import Mirror, make_reference_state_dict, reference_layout

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_JSON = ROOT / "tests" / "reference" / "official_resnet9_generator.json"


# -- the reference layout (tests/released_mirror.py), written independently of cyclegan.networks -----------------
def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The reference ResnetGenerator's forward (eval mode), from the state dict alone."""
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    w = lambda n: (sd[f"{n}.weight"], sd[f"{n}.bias"])  # noqa: E731
    norm = lambda h: F.instance_norm(h, eps=1e-5)  # noqa: E731  (no affine, no running stats)
    pad = lambda h, p: F.pad(h, (p, p, p, p), mode="reflect")  # noqa: E731
    h = F.relu(norm(F.conv2d(pad(x, 3), *w("model.1"))))
    h = F.relu(norm(F.conv2d(h, *w("model.4"), stride=2, padding=1)))
    h = F.relu(norm(F.conv2d(h, *w("model.7"), stride=2, padding=1)))
    blocks = sorted({int(k.split(".")[1]) for k in sd if ".conv_block." in k})
    for b in blocks:
        second = 6 if f"model.{b}.conv_block.6.weight" in sd else 5
        r = F.relu(norm(F.conv2d(pad(h, 1), *w(f"model.{b}.conv_block.1"))))
        r = norm(F.conv2d(pad(r, 1), *w(f"model.{b}.conv_block.{second}")))
        h = h + r
    n = len(blocks)
    h = F.relu(norm(F.conv_transpose2d(h, *w(f"model.{10 + n}"), stride=2, padding=1, output_padding=1)))
    h = F.relu(norm(F.conv_transpose2d(h, *w(f"model.{13 + n}"), stride=2, padding=1, output_padding=1)))
    return torch.tanh(F.conv2d(pad(h, 3), *w(f"model.{17 + n}")))


pytestmark = pytest.mark.usefixtures("one_thread")


def save(sd, path: Path) -> Path:
    torch.save(sd, path)
    return path


# -- the released layout ----------------------------------------------------------------------------------------
def test_released_layout_converts_with_the_reference_names_and_shapes(tmp_path):
    ref = json.loads(REFERENCE_JSON.read_text())["state_dict"]
    ours_layout = {f"{n}.{p}": s for n, s, _ in reference_layout(64, 9) for p in ("weight", "bias")}
    assert {r["name"]: tuple(r["shape"]) for r in ref if r["name"].endswith("weight")} == \
        {k: v for k, v in ours_layout.items() if k.endswith("weight")}, "the test's layout must be the reference's"

    sd = make_reference_state_dict(64, 9, stats_2018=True)
    assert {k: tuple(v.shape) for k, v in sd.items() if "running" not in k and "batches" not in k} == \
        {r["name"]: tuple(r["shape"]) for r in ref}
    path = save(sd, tmp_path / "horse2zebra.pth")
    model, record = convert.convert_pair(path, path, "horse", "zebra")
    assert (record["ngf"], record["n_blocks"]) == (64, 9)
    assert (model.ngf, model.n_blocks, model.use_dropout) == (64, 9, False)
    for g in (model.G_AB, model.G_BA):
        assert [(k, tuple(v.shape)) for k, v in g.state_dict().items()] == [(r["name"], tuple(r["shape"])) for r in ref]
    assert sum(p.numel() for p in model.G_AB.parameters()) == 11_378_179
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model.G_AB(x), reference_forward(sd, x))
    assert any("dropped 69 " in n for n in record["notes"]), record["notes"]  # 23 norms x 3 keys


# -- a tiny, awkward pair: numerical identity ------------------------------------------------------------------
@pytest.fixture()
def awkward_pair(tmp_path):
    """horse2zebra: 2018 stats keys, DataParallel prefix, dropout layout, ngf 4, 2 blocks; zebra2horse: plain."""
    a2b = make_reference_state_dict(4, 2, dropout=True, stats_2018=True, prefix="module.", seed=1)
    b2a = make_reference_state_dict(4, 2, seed=2)
    return a2b, b2a, save(a2b, tmp_path / "horse2zebra.pth"), save(b2a, tmp_path / "zebra2horse.pth")


def test_forward_identity_with_the_reference_architecture(awkward_pair, tmp_path):
    a2b, b2a, pa, pb = awkward_pair
    model, record = convert.convert_pair(pa, pb, "horse", "zebra")
    assert (model.ngf, model.n_blocks, model.name_A, model.name_B) == (4, 2, "horse", "zebra")
    x = torch.rand(2, 3, 40, 48) * 2 - 1
    with torch.no_grad():
        fake = model.G_AB(x)
        torch.testing.assert_close(fake, reference_forward(a2b, x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.G_BA(x), reference_forward(b2a, x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.G_BA(fake), reference_forward(b2a, reference_forward(a2b, x)),
                                   rtol=1e-5, atol=1e-6)
        assert fake.std() > 0.05, "a degenerate output would make the comparison meaningless"
    notes = " ".join(record["notes"])
    assert "module." in notes and "conv_block.6" in notes and "running-statistics" in notes

    # Saved as safetensors and loaded back strictly: the same numbers.
    out = convert.save_converted(model, record, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "conversion.json", "model.safetensors"]
    again = CycleGAN.from_pretrained(str(out))
    with torch.no_grad():
        assert torch.equal(again.G_AB(x), fake)
    assert not any(k.startswith(("D_A", "D_B")) for k in load_file(str(out / "model.safetensors")))


def test_cli_converts_and_writes_a_card(awkward_pair, tmp_path, capsys):
    _, _, pa, pb = awkward_pair
    out = tmp_path / "h2z"
    assert convert.main(["--a2b", str(pa), "--b2a", str(pb), "--out", str(out)]) == 0  # names from file names
    printed = capsys.readouterr().out
    assert "horse -> zebra from horse2zebra.pth" in printed and "ngf 4, 2 residual blocks" in printed
    assert "note:" in printed and "conv_block.6" in printed
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["name_A"], cfg["name_B"], cfg["ngf"], cfg["n_blocks"]) == ("horse", "zebra", 4, 2)
    card = (out / "README.md").read_text()
    meta = card_metadata(card)
    assert meta["pipeline_tag"] == "image-to-image" and meta["library_name"] == "cyclegan"
    assert meta["license"] == "other" and meta["license_link"].startswith("https://github.com/junyanz/")
    assert "horse2zebra.pth" in card and "zebra2horse.pth" in card and f'from_pretrained("{out}")' in card


# -- what does not match is a clear error ------------------------------------------------------------------------
def _mutate(kind: str) -> tuple[dict, str]:
    sd = make_reference_state_dict(4, 2)
    if kind == "extra":
        sd["model.30.weight"] = torch.zeros(3)
        return sd, "unexpected tensors: model.30.weight"
    if kind == "shape":
        sd["model.4.weight"] = torch.zeros(8, 4, 5, 5)
        return sd, "model.4.weight: file (8, 4, 5, 5) vs expected (8, 4, 3, 3)"
    if kind == "missing":
        del sd["model.19.bias"]
        return sd, "missing tensors: model.19.bias"
    if kind == "block":
        del sd["model.11.conv_block.5.weight"], sd["model.11.conv_block.5.bias"]
        return sd, "model.11 has convs at conv_block.[1]"
    if kind == "mixed-dropout":
        sd["model.11.conv_block.6.weight"] = sd.pop("model.11.conv_block.5.weight")
        sd["model.11.conv_block.6.bias"] = sd.pop("model.11.conv_block.5.bias")
        return sd, "some residual blocks have the dropout layout"
    if kind == "channels":
        sd["model.1.weight"] = torch.zeros(4, 1, 7, 7)
        return sd, "model.1.weight (shape (4, 1, 7, 7))"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["extra", "shape", "missing", "block", "mixed-dropout", "channels"])
def test_mismatches_are_named(kind, tmp_path, capsys):
    sd, expected = _mutate(kind)
    bad = save(sd, tmp_path / "bad2worse.pth")
    good = save(make_reference_state_dict(4, 2), tmp_path / "worse2bad.pth")
    with pytest.raises(convert.ConversionError) as e:
        convert.convert_pair(bad, good, "bad", "worse")
    assert expected in str(e.value) and "bad2worse.pth" in str(e.value)
    assert convert.main(["--a2b", str(bad), "--b2a", str(good), "--out", str(tmp_path / "o")]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_two_directions_must_share_an_architecture(tmp_path):
    a = save(make_reference_state_dict(4, 2), tmp_path / "a2b.pth")
    b = save(make_reference_state_dict(4, 3), tmp_path / "b2a.pth")
    with pytest.raises(convert.ConversionError, match="differ in n_blocks: .*a2b.pth has 2.*b2a.pth has 3"):
        convert.convert_pair(a, b, "a", "b")


class _Trap:
    """Unpickling this would create a file: weights_only loading must refuse it before that."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("payload", ["object", "module"])
def test_refuses_to_unpickle_objects(payload, tmp_path):
    marker = tmp_path / "was-unpickled"
    if payload == "object":
        obj = {**make_reference_state_dict(4, 2), "trap": _Trap(str(marker))}
    else:
        from cyclegan.networks import ResnetGenerator
        obj = ResnetGenerator(ngf=4, n_blocks=2)  # a whole pickled module, as some old scripts saved
    path = tmp_path / "evil2worse.pth"
    torch.save(obj, path)
    with pytest.raises(convert.ConversionError, match="refusing to unpickle"):
        convert.load_reference_file(path)
    assert not marker.exists()


# -- the command line -------------------------------------------------------------------------------------------
def test_help_lists_the_released_models_the_url_and_the_pairs(capsys):
    with pytest.raises(SystemExit) as e:  # `python -m cyclegan.convert` itself runs in the push test below
        convert.main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    names = ["apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
             "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh", "sat2map",
             "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label",
             "facades_label2photo", "iphone2dslr_flower"]
    assert all(n in text for n in names) and len(convert.RELEASED) == 18 == len(set(names))
    assert "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth" in text
    for ab, ba in [("horse2zebra", "zebra2horse"), ("apple2orange", "orange2apple"),
                   ("summer2winter_yosemite", "winter2summer_yosemite"), ("sat2map", "map2sat"),
                   ("cityscapes_photo2label", "cityscapes_label2photo"), ("facades_photo2label", "facades_label2photo")]:
        assert f"{ab} + {ba}" in text


def test_download_fetches_both_directions_from_a_mirror(tmp_path, monkeypatch, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    save(make_reference_state_dict(4, 2, seed=3), mirror / "horse2zebra.pth")
    save(make_reference_state_dict(4, 2, seed=4), mirror / "zebra2horse.pth")
    mirror_server = Mirror(mirror).start()
    try:
        monkeypatch.setenv("CYCLEGAN_PRETRAINED_URL", mirror_server.url)
        out, cache = tmp_path / "z2h", tmp_path / "cache"
        assert convert.main(["--download", "zebra2horse", "--download-dir", str(cache), "--out", str(out)]) == 0
        assert sorted(p.name for p in cache.iterdir()) == ["horse2zebra.pth", "zebra2horse.pth"]
        model = CycleGAN.from_pretrained(str(out))
        assert (model.name_A, model.name_B) == ("zebra", "horse")
        x = torch.rand(1, 3, 32, 32) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(model.G_AB(x), reference_forward(torch.load(mirror / "zebra2horse.pth", weights_only=True), x))
        assert convert.main(["--download", "style_monet", "--download-dir", str(cache), "--out", str(out.parent / "other")]) == 2
        assert "no released partner" in capsys.readouterr().err
    finally:
        mirror_server.stop()


def test_convert_and_push_to_the_hub(awkward_pair, tmp_path, hub_server):  # noqa: F811
    _, _, pa, pb = awkward_pair
    out = tmp_path / "h2z"
    env = {**os.environ, **hub_server.client_env(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "cyclegan.convert", "--a2b", str(pa), "--b2a", str(pb), "--names",
                        "horse", "zebra", "--out", str(out), "--push-to-hub", "test-user/horse2zebra-converted"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "published to" in r.stdout
    files = hub_server.files("test-user/horse2zebra-converted")
    assert {"config.json", "model.safetensors", "README.md", "conversion.json"} <= set(files)
    assert files["model.safetensors"] == (out / "model.safetensors").read_bytes()
    card = files["README.md"].decode()
    assert 'CycleGAN.from_pretrained("test-user/horse2zebra-converted")' in card
    assert card_metadata(card)["pipeline_tag"] == "image-to-image"


# -- hostile inputs: one sentence each, nothing written over ----------------------------------------------------
def test_cli_refuses_bad_files_and_never_replaces_a_model(tmp_path, capsys):
    from cyclegan.convert import main as convert_main
    from released_mirror import write_standins
    write_standins(tmp_path, ["horse2zebra", "zebra2horse"], ngf=8, n_blocks=1)
    a2b, b2a = str(tmp_path / "horse2zebra.pth"), str(tmp_path / "zebra2horse.pth")
    (tmp_path / "empty.pth").write_bytes(b"")

    def error(argv) -> str:
        assert convert_main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].endswith(".") and not lines[0].endswith(".."), lines
        return lines[0]

    # the old messages: "cannot tell the domain names", "... said: )", "has no released partner"
    assert "nosuch.pth: no such file." in error(["--a2b", "nosuch.pth", "--b2a", b2a, "--out", str(tmp_path / "o")])
    assert "a folder, not a .pth file" in error(["--a2b", str(tmp_path), "--b2a", b2a, "--out", str(tmp_path / "o")])
    assert "the file is empty" in error(["--a2b", str(tmp_path / "empty.pth"), "--b2a", b2a, "--names", "a", "b",
                                         "--out", str(tmp_path / "o")])
    assert "is not one of the released models" in error(["--download", "nosuch", "--out", str(tmp_path / "o")])
    # an existing model is not replaced without --overwrite (the old convert wrote over it silently)
    mine = tmp_path / "mine"
    CycleGAN(ngf=4, n_blocks=1).save_pretrained(mine)
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    assert "pass --overwrite" in error(["--a2b", a2b, "--b2a", b2a, "--out", str(mine)])
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before
    assert convert_main(["--a2b", a2b, "--b2a", b2a, "--out", str(mine), "--overwrite"]) == 0
    assert CycleGAN.from_pretrained(mine).name_A == "horse"
    capsys.readouterr()
    (tmp_path / "file").write_text("x")     # the old convert: a FileExistsError traceback after converting
    assert "so the folder cannot be created there" in error(["--a2b", a2b, "--b2a", b2a, "--out",
                                                             str(tmp_path / "file" / "o")])
