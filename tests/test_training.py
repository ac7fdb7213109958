"""Training: the step, the schedule, learning, exact resume, NaN handling, torchrun."""
import copy
import csv
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT, run_train
from cyclegan import CycleGAN
from cyclegan.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cyclegan.losses import TERM_NAMES, direction_terms, generator_terms, term_weights
from cyclegan.training import Trainer, lr_factor

sys.path.insert(0, str(ROOT / "bench"))
from baseline import BaselineStep  # noqa: E402


def read_losses(run_dir):
    with open(run_dir / "losses.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_fast_step_computes_what_the_reference_order_computes():
    torch.manual_seed(0)
    model = CycleGAN(ngf=8, n_blocks=2, ndf=8, with_discriminators=True)
    twin = copy.deepcopy(model)
    fast = Trainer(model)
    slow = BaselineStep(twin)
    for step in range(3):
        a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
        got, want = fast.train_step(a, b), slow(a, b)
        # Step 0 starts from equal weights; later steps from weights that Adam moved by float-reassociation
        # differences (it divides near-zero gradients by their own size), so they agree less tightly.
        rel = 1e-4 if step == 0 else 1e-3
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=rel, abs=1e-6), (step, name)
    # Same updates: weights agree up to float reassociation. Adam's first steps move every weight by about lr
    # whatever its gradient's size, so an element whose gradient is ~0 (and whose sign differs between the two
    # orders) can differ by up to 2 lr per step: bound each element by that, and the mean tightly.
    for (k, v), w in zip(model.state_dict().items(), twin.state_dict().values()):
        if k.endswith("weight"):
            diff = (v - w).abs()
            assert diff.max() <= 3 * 2 * 2e-4 and diff.mean() < 1e-6, (k, diff.max().item(), diff.mean().item())


def test_ablation_switches_drop_their_terms():
    torch.manual_seed(0)
    model = CycleGAN(ngf=8, n_blocks=1, ndf=8, with_discriminators=True, use_gan=False, use_cycle_B=False,
                     lambda_identity=0)
    d_before = copy.deepcopy(model.D_A.state_dict())
    t = Trainer(model)
    losses = t.train_step(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert losses["gan_AB"] == losses["gan_BA"] == losses["cycle_B"] == losses["idt_A"] == 0
    assert losses["cycle_A"] > 0 and losses["G_total"] == pytest.approx(losses["cycle_A"])
    assert all(torch.equal(v, model.D_A.state_dict()[k]) for k, v in d_before.items())  # no D step without GAN


# The paper's ablations (README's table) as config switches.
ABLATIONS = {"full": {}, "cycle_alone": dict(use_gan=False), "gan_alone": dict(use_cycle_A=False, use_cycle_B=False),
             "gan_forward_cycle": dict(use_cycle_B=False), "gan_backward_cycle": dict(use_cycle_A=False),
             "full_no_identity": dict(lambda_identity=0.0)}


@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_one_objective_trainer_reference_step_and_generator_terms_agree(ablation):
    """The six terms the fast Trainer logs, those of the paper-order step, and generator_terms called on
    separately computed outputs are the same numbers; switched-off terms are exactly 0."""
    torch.manual_seed(1)
    fields = dict(ngf=8, n_blocks=2, ndf=8, with_discriminators=True, lambda_A=10.0, lambda_B=7.0, lambda_identity=0.5)
    model = CycleGAN(**{**fields, **ABLATIONS[ablation]})
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    m = copy.deepcopy(model)
    with torch.no_grad():  # straight from the definitions, one network call per output
        fake_B, fake_A = m.G_AB(a), m.G_BA(b)
        direct = generator_terms(m.config, real_A=a, real_B=b, rec_A=m.G_BA(fake_B), rec_B=m.G_AB(fake_A),
                                 idt_A=m.G_BA(a), idt_B=m.G_AB(b), fake_scores_B=m.D_B(fake_B),
                                 fake_scores_A=m.D_A(fake_A))
    assert tuple(direct) == TERM_NAMES
    fast = Trainer(copy.deepcopy(model), pool_size=0).train_step(a, b)
    slow = BaselineStep(copy.deepcopy(model), pool_size=0)(a, b)
    for name in TERM_NAMES:
        assert fast[name] == pytest.approx(direct[name].item(), rel=1e-5, abs=1e-7), name
        assert slow[name] == pytest.approx(direct[name].item(), rel=1e-5, abs=1e-7), name
    assert fast["G_total"] == pytest.approx(sum(t.item() for t in direct.values()), rel=1e-5)
    off = {"cycle_alone": ["gan_AB", "gan_BA"], "gan_alone": ["cycle_A", "cycle_B"],
           "gan_forward_cycle": ["cycle_B"], "gan_backward_cycle": ["cycle_A"],
           "full_no_identity": ["idt_A", "idt_B"], "full": []}[ablation]
    for name in TERM_NAMES:
        assert (direct[name].item() == 0.0) == (name in off), name
        assert (fast[name] == 0.0) == (name in off), name
    # the weights are the config's: cycle_A is lambda_A times the L1 of the reconstruction
    if "cycle_A" not in off:
        with torch.no_grad():
            l1 = (m.G_BA(m.G_AB(a)) - a).abs().mean().item()
        assert direct["cycle_A"].item() == pytest.approx(10.0 * l1, rel=1e-5)


def test_one_direction_terms_for_a_viewer_of_one_image():
    """What explain has for one image and one direction (x, G(x), F(G(x)), F(x), maybe D(G(x))) gives that
    direction's three terms, weighted by the model's own config."""
    torch.manual_seed(2)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    for fields in (dict(), dict(use_cycle_A=False, use_cycle_B=False)):   # full and gan_alone
        m = CycleGAN(ngf=8, n_blocks=1, lambda_A=10.0, lambda_B=4.0, lambda_identity=0.5, **fields).eval()
        G, F = m.generators("BtoA")
        with torch.no_grad():
            rec, idt = F(G(x)), F(x)
            terms = direction_terms(m.config, "BtoA", x, rec=rec, idt=idt)  # no discriminators: no gan_BA
        w = term_weights(m.config)
        assert list(terms) == ["cycle_B", "idt_B"]
        assert w["cycle_B"] == (4.0 if not fields else 0.0) and w["idt_B"] == 2.0
        assert terms["cycle_B"].item() == pytest.approx(w["cycle_B"] * (rec - x).abs().mean().item(), rel=1e-6)
        assert terms["idt_B"].item() == pytest.approx(2.0 * (idt - x).abs().mean().item(), rel=1e-6)
        if fields:
            assert terms["cycle_B"].item() == 0.0  # gan_alone was never trained with a cycle term
    with pytest.raises(ValueError, match="direction"):
        direction_terms(m.config, "sideways", x)


def test_trainer_state_carries_the_config_and_refuses_another():
    model = CycleGAN(ngf=8, n_blocks=1, ndf=8, with_discriminators=True, use_cycle_B=False)
    state = Trainer(model).state_dict()
    assert state["config"] == model.config.to_dict()
    other = Trainer(CycleGAN(ngf=8, n_blocks=1, ndf=8, with_discriminators=True))
    with pytest.raises(ValueError, match="use_cycle_B False in the checkpoint vs True now"):
        other.load_state_dict(state)
    Trainer(CycleGAN(model.config)).load_state_dict(state)  # the same config resumes


def test_trainer_refuses_image_sizes_the_networks_cannot_take():
    t = Trainer(CycleGAN(ngf=8, n_blocks=1, ndf=8, with_discriminators=True))
    for side in (30, 16):  # not a multiple of 4; below the 70x70 PatchGAN's smallest input (24)
        with pytest.raises(ValueError, match=r"multiples of 4 and at least 24"):
            t.train_step(torch.rand(1, 3, side, side), torch.rand(1, 3, side, side))


def test_learning_rate_schedule_is_constant_then_linear_to_zero():
    factors = [lr_factor(e, 3, 4) for e in range(7)]
    assert factors[:3] == [1.0, 1.0, 1.0]
    assert factors[3:] == pytest.approx([0.8, 0.6, 0.4, 0.2])


def test_tiny_model_learns_cycle_consistency(tiny_data, tmp_path):
    out = tmp_path / "run"
    r = run_train("--data", str(tiny_data), "--out", str(out), "--n-epochs", "30", "--n-epochs-decay", "0",
                  "--max-steps", "240", "--save-every", "0", "--seed", "1")
    assert r.returncode == 0, r.stderr
    rows = read_losses(out)
    assert len(rows) == 240
    cyc = [float(r["cycle_A"]) + float(r["cycle_B"]) for r in rows]
    first, last = sum(cyc[:20]) / 20, sum(cyc[-20:]) / 20
    assert last < 0.5 * first, (first, last)
    # the run folder has what the README promises
    assert (out / "losses.png").stat().st_size > 0
    assert sorted(p.name for p in (out / "samples").iterdir())[:2] == ["epoch_001.png", "epoch_002.png"]
    assert (out / "model" / "model.safetensors").exists()
    loaded = CycleGAN.from_pretrained(out / "model")
    assert loaded.D_A is None  # published form: generators only unless asked


def test_resume_after_a_kill_gives_bit_identical_weights(tiny_data, tmp_path):
    common = ["--data", str(tiny_data), "--n-epochs", "2", "--n-epochs-decay", "1", "--max-steps", "20",
              "--pool-size", "4", "--seed", "3"]
    straight = run_train(*common, "--out", str(tmp_path / "straight"), "--save-every", "0")
    assert straight.returncode == 0, straight.stderr
    # steps 1..10 with a checkpoint at 10, then SIGKILL (mid-epoch: an epoch is 8 steps)
    killed = run_train(*common, "--out", str(tmp_path / "resumed"), "--save-every", "10",
                       env={"CYCLEGAN_TEST_FAULT": "10:kill"})
    assert killed.returncode == -9
    assert not list((tmp_path / "resumed").glob("*.tmp"))
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.safetensors")["step"] == 10
    resumed = run_train(*common, "--out", str(tmp_path / "resumed"), "--save-every", "0", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "at step 10" in resumed.stdout
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.safetensors")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.safetensors")
    assert a["step"] == b["step"] == 20 and a["lr"] == b["lr"] < 2e-4  # the decay epoch was reached
    for part in ("model",):
        for k, v in a["trainer"][part].items():
            assert torch.equal(v, b["trainer"][part][k]), k
    for k, v in a["trainer"]["opt_G"]["state"].items():
        assert torch.equal(v["exp_avg"], b["trainer"]["opt_G"]["state"][k]["exp_avg"])
    assert torch.equal(a["trainer"]["pool_A"]["images"], b["trainer"]["pool_A"]["images"])
    # the loss log has each step once, and the resumed run logged the same numbers
    ra, rb = read_losses(tmp_path / "straight"), read_losses(tmp_path / "resumed")
    assert [r["step"] for r in rb] == [str(i) for i in range(1, 21)]
    assert ra == rb


def test_checkpoint_round_trips_nested_state_without_pickle(tmp_path):
    state = {"trainer": {"opt": {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 2)}},
                                 "param_groups": [{"lr": 2e-4, "betas": [0.5, 0.999], "params": [0]}]},
                         "pool": {}},
             "step": 7, "lr": 1.5e-4, "args": {"name_A": "warm", "max_steps": None, "flags": [1, 2]},
             "rng": {"torch": torch.get_rng_state()}}
    save_checkpoint(tmp_path / "c.safetensors", state)
    back = load_checkpoint(tmp_path / "c.safetensors")
    assert list(back["trainer"]["opt"]["state"]) == [0]  # int keys (optimizer parameter ids) stay ints
    assert torch.equal(back["trainer"]["opt"]["state"][0]["exp_avg"], state["trainer"]["opt"]["state"][0]["exp_avg"])
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    assert back["trainer"]["opt"]["param_groups"] == state["trainer"]["opt"]["param_groups"]
    assert (back["step"], back["lr"], back["args"], back["trainer"]["pool"]) == (7, 1.5e-4, state["args"], {})
    with pytest.raises(CheckpointError, match="'a/b'"):  # a key that the layout could not read back
        save_checkpoint(tmp_path / "d.safetensors", {"a/b": 1})
    CycleGAN(ngf=4, n_blocks=1).save_pretrained(tmp_path / "model")
    with pytest.raises(CheckpointError, match="not a cyclegan training checkpoint"):
        load_checkpoint(tmp_path / "model" / "model.safetensors")


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "run"
    r = run_train("--data", str(tiny_data), "--out", str(out), "--save-every", "4", "--max-steps", "12",
                  env={"CYCLEGAN_TEST_FAULT": "5:nan"})  # a NaN batch at step 6
    assert r.returncode == 3
    assert "NaN or inf" in r.stderr and "last good checkpoint" in r.stderr
    state = load_checkpoint(out / "checkpoint.safetensors")
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["trainer"]["model"].values())
    assert len(read_losses(out)) <= 5


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(tiny_data, tmp_path):
    r = run_train("--data", str(tiny_data), "--out", str(tmp_path / "x"), "--resume")
    assert r.returncode == 2 and "no checkpoint" in r.stderr
    ok = run_train("--data", str(tiny_data), "--out", str(tmp_path / "y"), "--max-steps", "1")
    assert ok.returncode == 0, ok.stderr
    again = run_train("--data", str(tiny_data), "--out", str(tmp_path / "y"), "--max-steps", "1")
    assert again.returncode == 2 and "--resume" in again.stderr


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_torchrun_two_processes_equals_one_process_with_twice_the_batch(tiny_data, tmp_path):
    common = ["--data", str(tiny_data), "--n-epochs", "1", "--n-epochs-decay", "0", "--seed", "5",
              "--save-every", "0"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0"]
    ddp = run_train(*common, "--out", str(tmp_path / "ddp"), launcher=launcher, env={"OMP_NUM_THREADS": "1"})
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_train(*common, "--out", str(tmp_path / "single"), "--batch-size", "2")
    assert single.returncode == 0, single.stderr
    assert load_checkpoint(tmp_path / "ddp" / "checkpoint.safetensors")["step"] == 4  # 8 images, 2 ranks
    # Same data, same averaged gradients: the logged losses agree step by step ...
    for r_ddp, r_one in zip(read_losses(tmp_path / "ddp"), read_losses(tmp_path / "single"), strict=True):
        for name in ("G_total", "cycle_A", "cycle_B", "D_A", "D_B"):
            assert float(r_ddp[name]) == pytest.approx(float(r_one[name]), rel=1e-3), (r_ddp["step"], name)
    # ... and so do the weights, up to float reassociation that Adam magnifies on near-zero gradients.
    a = load_file(tmp_path / "ddp" / "model" / "model.safetensors")
    b = load_file(tmp_path / "single" / "model" / "model.safetensors")
    for k in a:
        if k.endswith("weight"):
            assert (a[k] - b[k]).abs().mean() < 3e-5, k
