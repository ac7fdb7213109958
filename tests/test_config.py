"""The model config (issue 12: one config, saved whole) and its bounds (issue 17: a config.json written by a
stranger is refused before anything is built, at once and without memory growth)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import ROOT
from cyclegan import CycleGAN
from cyclegan.config import DEFAULT_MAX_MODEL_MB, MAX_MODEL_MB_ENV, ConfigError, CycleGANConfig
from cyclegan.networks import PatchDiscriminator, ResnetGenerator, UnetGenerator

TINY = dict(ngf=8, n_blocks=2, ndf=8)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- one config, saved whole -------------------------------------------------------------------------------
def test_config_json_is_the_whole_config_and_reads_back(tmp_path):
    cfg = CycleGANConfig(name_A="cat", name_B="dog", **TINY, lambda_A=7.0, lambda_identity=0.0, use_cycle_B=False)
    model = CycleGAN(cfg)
    assert model.config is cfg and model.ngf == 8 and model.use_cycle_B is False
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved == cfg.to_dict() and set(saved) == set(CycleGANConfig.__dataclass_fields__)
    back = CycleGAN.from_pretrained(tmp_path / "m")
    assert back.config == cfg
    with pytest.raises(AttributeError, match="model.config"):
        back.ngf = 16  # the config is the one place; a model cannot drift from it


def test_keyword_construction_equals_config_construction():
    assert CycleGAN(**TINY).config == CycleGAN(CycleGANConfig(**TINY)).config
    with pytest.raises(TypeError, match="not both"):
        CycleGAN(CycleGANConfig(), ngf=8)


def test_old_config_files_still_load():
    # A config.json written before the dataclass: no switches (they default to on), and a U-Net whose depth
    # was stored as n_blocks.
    old = {"lambda_A": 20.0, "lambda_B": 20.0, "lambda_identity": 3.0, "n_blocks": 6, "n_layers_D": 3,
           "name_A": "photo", "name_B": "sketch", "ndf": 32, "netG": "resnet", "ngf": 16, "use_dropout": False,
           "with_discriminators": True}
    cfg = CycleGANConfig.from_dict(old)
    assert (cfg.n_blocks, cfg.use_gan, cfg.use_cycle_A, cfg.use_cycle_B) == (6, True, True, True)
    unet = CycleGANConfig.from_dict({"netG": "unet", "ngf": 4, "n_blocks": 6})
    assert unet.unet_depth == 6 and unet.n_blocks == CycleGANConfig().n_blocks
    assert unet.size_multiple == 64
    model = CycleGAN(unet)
    with torch.no_grad():
        assert model.G_AB(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)


README_ABLATIONS = {  # README's ablation table: the flags each model was trained with
    "full": {}, "full_no_identity": {}, "cycle_alone": {"use_gan": False},
    "gan_alone": {"use_cycle_A": False, "use_cycle_B": False},
    "gan_forward_cycle": {"use_cycle_B": False}, "gan_backward_cycle": {"use_cycle_A": False}}


@pytest.mark.parametrize("name", sorted(README_ABLATIONS) + ["photo2sketch"])
def test_shipped_models_state_their_loss_switches_and_load_strictly(name):
    folder = ROOT / "models" / ("photo2sketch" if name == "photo2sketch" else f"ablation/{name}")
    raw = json.loads((folder / "config.json").read_text())
    want = {"use_gan": True, "use_cycle_A": True, "use_cycle_B": True, **README_ABLATIONS.get(name, {})}
    assert {k: raw[k] for k in want} == want  # written out, not left to defaults
    assert (raw["lambda_identity"] == 0) == (name == "full_no_identity")
    model = CycleGAN.from_pretrained(folder)
    assert model.config == CycleGANConfig.from_dict(raw)


# -- the layer arithmetic matches the real networks ------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(ngf=8, n_blocks=3), dict(ngf=5, n_blocks=0), dict(ngf=64, n_blocks=9)])
def test_parameter_count_of_resnet_generator_is_exact(kw):
    assert CycleGANConfig(**kw).parameter_count()["G_AB"] == n_params(ResnetGenerator(**kw))


@pytest.mark.parametrize("ngf,depth", [(4, 5), (3, 7), (2, 9)])
def test_parameter_count_of_unet_generator_is_exact(ngf, depth):
    cfg = CycleGANConfig(netG="unet", ngf=ngf, unet_depth=depth)
    assert cfg.parameter_count()["G_AB"] == n_params(UnetGenerator(ngf=ngf, num_downs=depth))


@pytest.mark.parametrize("ndf,layers", [(64, 3), (3, 1), (2, 8)])
def test_parameter_count_of_patchgan_is_exact(ndf, layers):
    cfg = CycleGANConfig(ndf=ndf, n_layers_D=layers, with_discriminators=True)
    counts = cfg.parameter_count()
    assert counts["D_A"] == counts["D_B"] == n_params(PatchDiscriminator(ndf=ndf, n_layers=layers))
    small = cfg.replace(ngf=4, n_blocks=1)
    assert small.parameter_count()["total"] == n_params(CycleGAN(small))


def _runs(cfg: CycleGANConfig, side: int) -> bool:
    """Whether the real networks take a side x side input: G keeps the size, D (if any) gives a score."""
    model = CycleGAN(cfg).eval()
    try:
        with torch.no_grad():
            y = model.G_AB(torch.zeros(1, 3, side, side))
            if y.shape[-2:] != (side, side):
                return False
            return model.D_B is None or model.D_B(y).numel() >= 1
    except (RuntimeError, ValueError):
        return False


@pytest.mark.parametrize("kw", [dict(ngf=2, n_blocks=1), dict(ngf=2, n_blocks=0),
                                dict(ngf=2, n_blocks=1, with_discriminators=True, ndf=2),
                                dict(ngf=2, n_blocks=1, with_discriminators=True, ndf=2, n_layers_D=1),
                                dict(ngf=2, n_blocks=1, with_discriminators=True, ndf=2, n_layers_D=5),
                                dict(netG="unet", ngf=2, unet_depth=5),
                                dict(netG="unet", ngf=2, unet_depth=5, with_discriminators=True, ndf=2)])
def test_min_side_is_the_smallest_side_the_real_networks_accept(kw):
    cfg = CycleGANConfig(**kw)
    m = cfg.size_multiple
    assert m == (4 if cfg.netG == "resnet" else 2 ** cfg.unet_depth)
    assert cfg.min_side % m == 0 and _runs(cfg, cfg.min_side)
    assert all(not _runs(cfg, side) for side in range(m, cfg.min_side, m))


def test_paper_model_is_far_inside_the_default_cap():
    paper = CycleGANConfig(with_discriminators=True)
    assert paper.parameter_count()["total"] == 2 * 11_378_179 + 2 * 2_764_737
    assert 3 * paper.memory_estimate_mb() < DEFAULT_MAX_MODEL_MB
    assert paper.validate() is paper


# -- hostile configs: one line naming the field and the limit --------------------------------------------------
HOSTILE = [  # (fields, words the message must contain)
    ({"ngf": 1024}, ["ngf", "256"]),
    ({"ngf": 0}, ["ngf", "1"]),
    ({"ngf": -64}, ["ngf", "1"]),
    ({"ndf": 100000}, ["ndf", "256"]),
    ({"n_blocks": 10000}, ["n_blocks", "16"]),
    ({"n_blocks": -1}, ["n_blocks", "0"]),
    ({"n_layers_D": 9}, ["n_layers_D", "8"]),
    ({"n_layers_D": 0}, ["n_layers_D", "1"]),
    ({"netG": "unet", "unet_depth": 30}, ["unet_depth", "9"]),
    ({"netG": "unet", "unet_depth": 10**9}, ["unet_depth", "9"]),
    ({"ngf": 10**400}, ["ngf", "256", "401 digits"]),
    ({"netG": "unet", "unet_depth": 2}, ["unet_depth", "5"]),
    ({"netG": "transformer"}, ["netG", "resnet"]),
    ({"netD": "pixel"}, ["netD", "patch"]),
    ({"lambda_A": -1.0}, ["lambda_A", "0"]),
    ({"lambda_identity": float("nan")}, ["lambda_identity", "finite"]),
    ({"lambda_B": float("inf")}, ["lambda_B", "finite"]),
    ({"name_A": ""}, ["name_A", "64"]),
    ({"name_B": "x" * 10000}, ["name_B", "64"]),
    ({"ngf": 256, "n_blocks": 16}, ["MB", "limit", MAX_MODEL_MB_ENV]),
]
WRONG_TYPES = [
    ({"ngf": "64"}, ["ngf", "integer", "str"]),
    ({"ngf": 64.0}, ["ngf", "integer", "float"]),
    ({"n_blocks": True}, ["n_blocks", "integer", "bool"]),
    ({"ndf": None}, ["ndf", "integer"]),
    ({"lambda_A": "10"}, ["lambda_A", "number"]),
    ({"lambda_B": False}, ["lambda_B", "number"]),
    ({"use_gan": 1}, ["use_gan", "true or false"]),
    ({"netG": ["resnet"]}, ["netG", "string"]),
    ({"name_A": 5}, ["name_A", "string"]),
]


@pytest.mark.parametrize("fields,words", HOSTILE + WRONG_TYPES, ids=lambda v: str(v)[:40])
def test_hostile_fields_are_refused_with_one_line_naming_field_and_limit(fields, words):
    with pytest.raises(ConfigError) as err:
        CycleGANConfig.from_dict({"netG": "resnet", "ngf": 8, "n_blocks": 2, **fields}).validate()
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    if "MB" not in words:  # a model built in code is refused too (the memory cap is from_pretrained's)
        with pytest.raises(ValueError):
            CycleGAN(**{"ngf": 8, "n_blocks": 2, **fields})


def test_unknown_and_missing_keys_are_named():
    with pytest.raises(ConfigError, match="unknown key.*lamda_A.*n_blocks_extra"):
        CycleGANConfig.from_dict({"netG": "resnet", "ngf": 8, "n_blocks": 2, "lamda_A": 1.0, "n_blocks_extra": 1})
    with pytest.raises(ConfigError, match="missing required key.*ngf"):
        CycleGANConfig.from_dict({"netG": "resnet", "n_blocks": 2})
    with pytest.raises(ConfigError, match="missing required key.*netG.*ngf.*n_blocks"):
        CycleGANConfig.from_dict({})
    with pytest.raises(ConfigError, match="unet_depth"):
        CycleGANConfig.from_dict({"netG": "unet", "ngf": 8})
    with pytest.raises(ConfigError, match="JSON object"):
        CycleGANConfig.from_dict([1, 2])


def test_memory_cap_is_a_setting(monkeypatch):
    paper = CycleGANConfig()
    estimate = paper.memory_estimate_mb()
    with pytest.raises(ConfigError, match=f"limit {estimate / 2:g} MB"):
        paper.validate(max_model_mb=estimate / 2)
    monkeypatch.setenv(MAX_MODEL_MB_ENV, str(estimate / 2))
    with pytest.raises(ConfigError, match=MAX_MODEL_MB_ENV):
        paper.validate()
    big = CycleGANConfig(ngf=256, n_blocks=16)
    monkeypatch.setenv(MAX_MODEL_MB_ENV, "100000")
    assert big.validate() is big  # a private deployment can allow more
    monkeypatch.setenv(MAX_MODEL_MB_ENV, "lots")
    with pytest.raises(ConfigError, match=MAX_MODEL_MB_ENV):
        paper.validate()


def test_memory_cap_applies_to_loading_not_to_a_model_built_in_code(monkeypatch, tmp_path):
    CycleGAN(**TINY).save_pretrained(tmp_path / "m")
    monkeypatch.setenv(MAX_MODEL_MB_ENV, "0.001")
    model = CycleGAN(**TINY)  # the caller's own choice
    with pytest.raises(ConfigError, match=MAX_MODEL_MB_ENV):
        CycleGAN.from_pretrained(tmp_path / "m")
    assert CycleGAN.from_pretrained(tmp_path / "m", max_model_mb=100).config == model.config


# -- hostile model folders: refused within a second, memory flat ----------------------------------------------
def _folder(root: Path, name: str, config, weights: dict | bytes | None = None) -> Path:
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    if isinstance(weights, bytes):
        (d / "model.safetensors").write_bytes(weights)
    else:
        save_file(weights or {"G_AB.model.1.weight": torch.zeros(4, 3, 7, 7)}, str(d / "model.safetensors"))
    return d


def _announcing_header(n_bytes: int) -> bytes:
    """A safetensors header announcing one float32 tensor of n_bytes, followed by no data."""
    header = json.dumps({"G_AB.model.1.weight": {"dtype": "F32", "shape": [n_bytes // 4],
                                                 "data_offsets": [0, n_bytes]}}).encode()
    return len(header).to_bytes(8, "little") + header


@pytest.fixture(scope="module")
def hostile_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    base = {"netG": "resnet", "ngf": 8, "n_blocks": 2}
    tiny = CycleGAN(**base).state_dict()
    other = CycleGAN(ngf=4, n_blocks=2).state_dict()
    cases = {
        "huge_ngf": (_folder(root, "huge_ngf", {**base, "ngf": 1024}), "ngf"),
        "huge_blocks": (_folder(root, "huge_blocks", {**base, "n_blocks": 100000}), "n_blocks"),
        "huge_estimate": (_folder(root, "huge_estimate", {**base, "ngf": 256, "n_blocks": 16}), "MB"),
        "negative": (_folder(root, "negative", {**base, "ngf": -8}), "ngf"),
        "zero": (_folder(root, "zero", {**base, "ndf": 0}), "ndf"),
        "wrong_type": (_folder(root, "wrong_type", {**base, "ngf": "8"}), "ngf"),
        "missing_fields": (_folder(root, "missing_fields", {"name_A": "x"}), "missing"),
        "unknown_arch": (_folder(root, "unknown_arch", {**base, "netG": "vit"}), "netG"),
        "unet_too_deep": (_folder(root, "unet_too_deep", {"netG": "unet", "ngf": 8, "n_blocks": 60}), "unet_depth"),
        "not_json": (_folder(root, "not_json", "{'ngf': 8"), "JSON"),
        "huge_config": (_folder(root, "huge_config", json.dumps({**base, "name_A": "a" * 200_000})), "bytes"),
        "mismatched_weights": (_folder(root, "mismatched_weights", base, other), "mis-shaped"),
        "missing_weights": (_folder(root, "missing_weights", base, {k: v for k, v in tiny.items()
                                                                       if not k.startswith("G_BA")}), "missing"),
        "announces_4GB": (_folder(root, "announces_4GB", base, _announcing_header(4 << 30)), "safetensors"),
        # the paper's architecture (about 90 MB of generators) with weights from another: refused from the
        # file's header before the model is allocated
        "paper_config_tiny_weights": (_folder(root, "paper_config_tiny_weights",
                                              {"netG": "resnet", "ngf": 64, "n_blocks": 9}, tiny), "another config"),
    }
    return cases


CHECK = textwrap.dedent("""
    import json, sys, time
    import torch
    from cyclegan import CycleGAN

    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        open("/proc/self/clear_refs", "w").write("5")   # reset the peak (VmHWM) to the current size
        before, t0 = rss("VmRSS:"), time.perf_counter()
        try:
            CycleGAN.from_pretrained(path)
            msg = None
        except Exception as e:
            msg = f"{type(e).__name__}: {e}"
        out[name] = {"seconds": time.perf_counter() - t0, "growth": rss("VmHWM:") - before, "error": msg}
    print(json.dumps(out))
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to measure peak memory")
def test_hostile_model_folders_are_refused_at_once_without_memory_growth(hostile_folders):
    paths = {name: str(path) for name, (path, _) in hostile_folders.items()}
    r = subprocess.run([sys.executable, "-c", CHECK, json.dumps(paths)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads(r.stdout.strip().splitlines()[-1])
    for name, (_, word) in hostile_folders.items():
        res = results[name]
        assert res["error"] is not None, f"{name} was loaded"
        assert isinstance(res["error"], str) and "\n" not in res["error"] and word in res["error"], (name, res)
        assert res["error"].split(":")[0] in ("ConfigError", "ValueError", "FileNotFoundError"), (name, res)
        assert res["seconds"] < 1.0, (name, res)
        assert res["growth"] < 100 * 2 ** 20, (name, res)


def test_translate_refuses_the_ngf_1024_folder_naming_ngf(hostile_folders, tmp_path):
    folder, _ = hostile_folders["huge_ngf"]
    image = tmp_path / "in.png"
    from PIL import Image
    Image.new("RGB", (32, 32), (120, 30, 200)).save(image)
    r = subprocess.run([sys.executable, "-m", "cyclegan.translate", str(image), "--model", str(folder), "--out",
                        str(tmp_path / "out"), "--threads", "1"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ngf" in lines[0] and "256" in lines[0], r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


HUB_CHECK = textwrap.dedent("""
    import json
    from cyclegan import CycleGAN
    out = {}
    for repo in ("test-user/hostile", "test-user/huge", "test-user/tiny"):
        try:
            out[repo] = CycleGAN.from_pretrained(repo).config.ngf
        except Exception as e:
            out[repo] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
""")


def test_from_pretrained_checks_a_hub_repo_before_downloading_its_weights(tmp_path):
    from hub_server import Announced, start_hub_server

    folder = tmp_path / "tiny"
    CycleGAN(ngf=4, n_blocks=1).save_pretrained(folder)
    files = {n: (folder / n).read_bytes() for n in ("config.json", "model.safetensors")}
    hostile = json.dumps({**json.loads(files["config.json"]), "ngf": 1024}).encode()
    server = start_hub_server()
    try:
        server.put("test-user/tiny", files)
        server.put("test-user/hostile", {"config.json": hostile, "model.safetensors": Announced(50 * 10**9)})
        server.put("test-user/huge", {"config.json": files["config.json"], "model.safetensors": Announced(50 * 10**9)})
        env = {**os.environ, **server.client_env(tmp_path), "PYTHONPATH": str(ROOT)}
        r = subprocess.run([sys.executable, "-c", HUB_CHECK], capture_output=True, text=True, env=env, cwd=ROOT,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        res = json.loads(r.stdout.strip().splitlines()[-1])
        weights_gets = [p for m, p, *_ in server.state.log if m == "GET" and p.endswith("model.safetensors")]
    finally:
        server.stop()
    assert res["test-user/hostile"].startswith("ConfigError") and "ngf = 1024" in res["test-user/hostile"]
    assert res["test-user/huge"].startswith("ValueError") and "50,000.0 MB" in res["test-user/huge"], res
    assert res["test-user/tiny"] == 4
    assert len(weights_gets) == 1, weights_gets  # only the good repo's weights were downloaded
