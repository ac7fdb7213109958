"""The training command line (`python -m cyclegan.train`, `python train/run.py`): what a resumed run does with
the options typed again, sizes checked before anything is written, a diverging or interrupted run, run.json,
the local model card and --help. Every failure here is one line on stderr, never a traceback."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_train
from cyclegan.checkpoint import load_checkpoint

FAULT = "CYCLEGAN_TEST_FAULT"


def read_losses(run_dir):
    with open(run_dir / "losses.csv", newline="") as f:
        return list(csv.DictReader(f))


def near(x: float):
    return pytest.approx(x, rel=1e-5)  # losses.csv keeps 6 significant digits


def lr_by_step(run_dir) -> dict[int, float]:
    return {int(r["step"]): float(r["lr"]) for r in read_losses(run_dir)}


def one_error_line(r: subprocess.CompletedProcess) -> str:
    """The single `error: ...` line of a failed run (and no traceback)."""
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, r.stderr[-3000:]
    return errors[0]


# ---- resume: honour what can be honoured, refuse the rest in one message ------------------------------------

def test_a_finished_run_resumed_with_a_longer_schedule_trains_the_new_epochs(tiny_data, tmp_path):
    run = tmp_path / "run"
    first = run_train("--data", str(tiny_data), "--out", str(run), "--n-epochs", "1", "--n-epochs-decay", "1",
                      "--save-every", "0")
    assert first.returncode == 0, first.stderr
    assert load_checkpoint(run / "checkpoint.safetensors")["step"] == 16  # 8 images, 2 epochs

    # Nothing more asked: nothing trained, and the output says how to train more.
    again = run_train("--data", str(tiny_data), "--out", str(run), "--resume")
    assert again.returncode == 0, again.stderr
    assert "nothing to train" in again.stdout and "--n-epochs" in again.stdout
    assert len(read_losses(run)) == 16

    more = run_train("--data", str(tiny_data), "--out", str(run), "--resume", "--n-epochs", "3",
                     "--n-epochs-decay", "2")
    assert more.returncode == 0, more.stderr
    assert "--n-epochs 3" in more.stdout and "--n-epochs-decay 2" in more.stdout  # said, not silent
    assert load_checkpoint(run / "checkpoint.safetensors")["step"] == 40
    lr = lr_by_step(run)
    assert sorted(lr) == list(range(1, 41))
    # The new schedule from epoch 3 on: 3 epochs at 2e-4 (the third of them is epoch 3), then 2 of decay.
    assert lr[17] == lr[24] == near(2e-4)
    assert lr[25] == near(2e-4 * 2 / 3) and lr[33] == near(2e-4 / 3)

    # run.json keeps every command line of the run, the first and each resume.
    commands = json.loads((run / "run.json").read_text())["commands"]
    # (the resume that trained nothing wrote nothing)
    assert len(commands) == 2 and "--resume" not in commands[0]
    assert "--resume" in commands[1] and "--n-epochs-decay 2" in commands[1]
    # A run that was never pushed gets a card that says where the model is, and no claim that it was pushed.
    card = (run / "model" / "README.md").read_text()
    assert "pushed" not in card.lower() and "More Information Needed" not in card
    assert str(run / "model") in card


def test_a_new_learning_rate_on_resume_applies_from_that_step_and_decays_from_there(tiny_data, tmp_path):
    run = tmp_path / "run"
    common = ["--data", str(tiny_data), "--out", str(run), "--save-every", "0"]
    # 1 epoch at the initial rate, then 3 of decay (factors 0.75, 0.5, 0.25); stop after 2 epochs.
    first = run_train(*common, "--n-epochs", "1", "--n-epochs-decay", "3", "--max-steps", "16")
    assert first.returncode == 0, first.stderr
    resumed = run_train(*common, "--resume", "--lr", "1e-5")
    assert resumed.returncode == 0, resumed.stderr
    assert "--lr 1e-05" in resumed.stdout
    lr = lr_by_step(run)
    assert sorted(lr) == list(range(1, 33))
    assert lr[9] == near(1.5e-4)                       # before the resume: untouched
    assert lr[17] == lr[24] == near(1e-5)              # the typed rate from the resumed step on
    assert lr[25] == near(0.5e-5)                      # then the same linear decay to 0, scaled
    assert load_checkpoint(run / "checkpoint.safetensors")["step"] == 32


def test_resume_refuses_options_that_define_the_model_naming_each_with_its_stored_value(tiny_data, tmp_path):
    run = tmp_path / "run"
    first = run_train("--data", str(tiny_data), "--out", str(run), "--max-steps", "2", "--save-every", "0")
    assert first.returncode == 0, first.stderr
    before = (run / "checkpoint.safetensors").read_bytes()
    r = run_train("--data", str(tiny_data), "--out", str(run), "--resume", "--ngf", "16", "--name-A", "horse",
                  "--crop-size", "32", "--no-gan", "--lr", "1e-5")
    assert r.returncode == 2
    line = one_error_line(r)
    for typed, stored in (("--ngf 16", "8"), ("--name-A horse", "A"), ("--crop-size 32", "64"), ("--no-gan", "")):
        assert typed in line and stored in line, (typed, line)
    assert "--lr" not in line  # a new rate is honoured, so it is not in the refusal
    assert (run / "checkpoint.safetensors").read_bytes() == before
    assert len(json.loads((run / "run.json").read_text())["commands"]) == 1


def test_a_checkpoint_written_before_the_config_dataclass_still_resumes(tiny_data, tmp_path):
    """Runs started with the previous train/run.py kept every option in state["args"] and one command."""
    from cyclegan.checkpoint import save_checkpoint

    run = tmp_path / "run"
    first = run_train("--data", str(tiny_data), "--out", str(run), "--n-epochs", "1", "--n-epochs-decay", "0",
                      "--save-every", "0")
    assert first.returncode == 0, first.stderr
    state = load_checkpoint(run / "checkpoint.safetensors")
    options, config = state.pop("options"), state.pop("config")
    state.pop("commands"), state.pop("lr_base")
    old_args = {k: v for k, v in options.items() if k != "unet_depth"}
    old_args.update(name_A=None, name_B=None, data=str(tiny_data), max_steps=None, out=str(run))
    state.update(args=old_args, command="python train/run.py --data D --out R")
    save_checkpoint(run / "checkpoint.safetensors", state)
    more = run_train("--data", str(tiny_data), "--out", str(run), "--resume", "--n-epochs", "2")
    assert more.returncode == 0, more.stderr
    assert load_checkpoint(run / "checkpoint.safetensors")["step"] == 16
    commands = json.loads((run / "run.json").read_text())["commands"]
    assert commands[0] == "python train/run.py --data D --out R" and len(commands) == 2
    assert config["ngf"] == 8


# ---- sizes: checked against both networks before the run folder exists ---------------------------------------

def run_unet(*args: str) -> subprocess.CompletedProcess:
    """train/run.py with a tiny U-Net (conftest's TINY types --n-blocks, which is the ResNet's)."""
    cmd = [sys.executable, str(ROOT / "train" / "run.py"), "--netG", "unet", "--ngf", "8", "--ndf", "8",
           "--load-size", "72", "--crop-size", "64", "--threads", "1", "--max-steps", "1", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_a_unet_deeper_than_the_crop_allows_is_a_one_line_error_before_anything_is_written(tiny_data, tmp_path):
    out = tmp_path / "run"
    common = ["--data", str(tiny_data), "--out", str(out)]
    # The command of the report: --n-blocks is the ResNet's; the U-Net's depth has its own option.
    r = run_unet(*common, "--n-blocks", "8")
    assert r.returncode == 2
    line = one_error_line(r)
    assert "--unet-depth" in line and "at most 6 for --crop-size 64" in line
    r = run_unet(*common, "--unet-depth", "8")
    assert r.returncode == 2
    line = one_error_line(r)
    assert "--crop-size 64" in line and "256" in line and "--unet-depth 6" in line
    assert not out.exists()
    ok = run_unet(*common, "--unet-depth", "6")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("load, crop, needle", [("24", "16", "24"), ("72", "66", "multiple of 4")])
def test_sizes_the_networks_cannot_take_are_refused_before_anything_is_written(tiny_data, tmp_path, load, crop,
                                                                               needle):
    out = tmp_path / "run"
    r = run_train("--data", str(tiny_data), "--out", str(out), "--load-size", load, "--crop-size", crop,
                  "--max-steps", "1")
    assert r.returncode == 2
    line = one_error_line(r)
    assert f"--crop-size {crop}" in line and needle in line
    assert not out.exists()


# ---- a run that goes wrong stops cleanly -----------------------------------------------------------------

def test_a_diverging_run_stops_like_a_nan_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "run"
    r = run_train("--data", str(tiny_data), "--out", str(out), "--lr", "1e6", "--save-every", "1",
                  "--max-steps", "40")
    assert r.returncode == 3, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert "diverged" in r.stderr and "last good checkpoint" in r.stderr
    bad = int(re.search(r"error at step (\d+)", r.stderr).group(1))
    assert bad < 10  # it stops soon after: the run does not go on for 40 steps
    # The loss of step k is computed from the weights saved at step k - 1, so the checkpoint kept is older.
    state = load_checkpoint(out / "checkpoint.safetensors")
    assert state["step"] <= bad - 2
    assert all(torch.isfinite(v).all() for v in state["trainer"]["model"].values())
    assert len(read_losses(out)) < bad  # the diverged step is not logged as if it were healthy


def test_healthy_runs_stay_far_below_the_divergence_limit(tiny_data, tmp_path):
    """The limit is justified by real runs' losses: the tiny model at the paper's rate and ten times it."""
    from cyclegan.train import ADVERSARIAL_TERMS, DIVERGENCE_LIMIT

    for lr in ("2e-4", "2e-3"):
        out = tmp_path / lr
        r = run_train("--data", str(tiny_data), "--out", str(out), "--lr", lr, "--max-steps", "48",
                      "--save-every", "0", "--pool-size", "4")
        assert r.returncode == 0, r.stderr[-2000:]
        worst = max(float(row[k]) for row in read_losses(out) for k in ADVERSARIAL_TERMS)
        assert worst < DIVERGENCE_LIMIT / 100, (lr, worst)


def test_ctrl_c_saves_the_step_reached_and_resume_continues_from_it(tiny_data, tmp_path):
    out = tmp_path / "run"
    common = ["--data", str(tiny_data), "--out", str(out), "--max-steps", "8", "--save-every", "0"]
    r = run_train(*common, env={FAULT: "5:sigint"})  # SIGINT, as Ctrl-C sends it, after step 5
    assert r.returncode == 130, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "interrupted" in r.stderr and "--resume" in r.stderr
    assert load_checkpoint(out / "checkpoint.safetensors")["step"] == 5
    resumed = run_train(*common, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert [int(row["step"]) for row in read_losses(out)] == list(range(1, 9))


def test_sigterm_stops_like_ctrl_c(tiny_data, tmp_path):
    """docker stop, a Space restart or a scheduler's preemption send SIGTERM: the step reached is saved too."""
    out = tmp_path / "run"
    r = run_train("--data", str(tiny_data), "--out", str(out), "--max-steps", "8", "--save-every", "0",
                  env={FAULT: "3:sigterm"})
    assert r.returncode == 143, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "SIGTERM" in r.stderr and "--resume" in r.stderr
    assert load_checkpoint(out / "checkpoint.safetensors")["step"] == 3


# ---- nothing typed is ignored; bad paths are one line ----------------------------------------------------

def test_bf16_channels_last_and_a_max_steps_beyond_the_schedule_say_what_they_do_on_the_cpu(tiny_data, tmp_path):
    r = run_train("--data", str(tiny_data), "--out", str(tmp_path / "run"), "--device", "cpu", "--bf16",
                  "--channels-last", "--n-epochs", "1", "--n-epochs-decay", "0", "--max-steps", "100")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stdout.splitlines() if line.startswith("note:")]
    assert any("--bf16" in n and "cpu" in n.lower() for n in notes), r.stdout
    assert any("--channels-last" in n for n in notes), r.stdout
    assert any("--max-steps 100" in n and "8 steps" in n for n in notes), r.stdout
    assert load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")["step"] == 8


@pytest.mark.parametrize("extra, needle", [
    (["--hub-every", "2"], "--push-to-hub"),
    (["--hub-private"], "--push-to-hub"),
    (["--hf-columns", "a", "b"], "--hf-dataset"),
    (["--netG", "resnet", "--unet-depth", "6"], "--netG unet"),
    (["--batch-size", "0"], "--batch-size"),
    (["--device", "tpu9"], "--device"),
])
def test_options_that_would_be_ignored_or_cannot_work_are_refused_in_one_line(tiny_data, tmp_path, extra, needle):
    out = tmp_path / "run"
    r = run_train("--data", str(tiny_data), "--out", str(out), "--max-steps", "1", *extra)
    assert r.returncode == 2
    assert needle in one_error_line(r)
    assert not out.exists()


def test_missing_data_unwritable_out_and_a_corrupt_checkpoint_are_one_line_errors(tiny_data, tmp_path):
    r = run_train("--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--max-steps", "1")
    assert r.returncode == 2 and "nowhere" in one_error_line(r)
    r = run_train("--data", str(tiny_data / "trainA" / "000.png"), "--out", str(tmp_path / "run"), "--max-steps", "1")
    assert r.returncode == 2 and "is a file, not a folder" in one_error_line(r)
    r = run_train("--hf-dataset", str(tmp_path / "no-dataset"), "--out", str(tmp_path / "run"), "--max-steps", "1")
    assert r.returncode == 2 and "no-dataset" in one_error_line(r)  # or the one line naming the extra to install
    assert not (tmp_path / "run").exists()
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    r = run_train("--data", str(tiny_data), "--out", str(blocker / "run"), "--max-steps", "1")
    assert r.returncode == 2 and "file.txt" in one_error_line(r)
    run = tmp_path / "run"
    ok = run_train("--data", str(tiny_data), "--out", str(run), "--max-steps", "1")
    assert ok.returncode == 0, ok.stderr
    ckpt = run / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    r = run_train("--data", str(tiny_data), "--out", str(run), "--resume")
    assert r.returncode == 2 and "checkpoint" in one_error_line(r)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_gpu_that_is_not_there_is_a_one_line_error(tiny_data, tmp_path):
    r = run_train("--data", str(tiny_data), "--out", str(tmp_path / "run"), "--device", "cuda", "--max-steps", "1")
    assert r.returncode == 2 and "cuda" in one_error_line(r)
    assert not (tmp_path / "run").exists()


# ---- --help ------------------------------------------------------------------------------------------------

def test_help_lists_every_option_with_clean_defaults_and_no_test_hooks():
    r = subprocess.run([sys.executable, str(ROOT / "train" / "run.py"), "--help"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    from cyclegan.train import build_parser

    for action in build_parser()._actions:
        for option in action.option_strings:
            assert option in r.stdout, option
    assert "--fault" not in r.stdout
    assert "(default: None)" not in r.stdout and "(default: False)" not in r.stdout
    text = " ".join(r.stdout.split())
    for line in text.split("--"):
        assert line.count("(default") <= 1, line
    assert "(default: 0.0002)" in text and "(default: A)" in text
    module = subprocess.run([sys.executable, "-m", "cyclegan.train", "--help"], capture_output=True, text=True,
                            cwd=ROOT)
    assert module.returncode == 0
    assert module.stdout[module.stdout.index("options:"):] == r.stdout[r.stdout.index("options:"):]


def test_init_from_fine_tunes_a_model_and_refuses_what_cannot_work(tiny_data, tmp_path):
    from cyclegan import CycleGAN
    common = ("--data", str(tiny_data), "--n-epochs", "1", "--n-epochs-decay", "0", "--max-steps", "2")
    base = run_train(*common, "--out", str(tmp_path / "base"), "--export-discriminators")
    assert base.returncode == 0, base.stderr
    # a learning rate of 1e-12 leaves the weights where --init-from put them (a fresh start would not)
    tuned = run_train(*common, "--out", str(tmp_path / "tuned"), "--init-from", str(tmp_path / "base" / "model"),
                      "--lr", "1e-12", "--export-discriminators", "--seed", "7")
    assert tuned.returncode == 0, tuned.stderr
    a = CycleGAN.from_pretrained(tmp_path / "base" / "model").state_dict()
    b = CycleGAN.from_pretrained(tmp_path / "tuned" / "model").state_dict()
    assert set(a) == set(b) and any(k.startswith("D_A.") for k in a)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    fresh = run_train(*common, "--out", str(tmp_path / "fresh"), "--lr", "1e-12", "--seed", "7")
    c = CycleGAN.from_pretrained(tmp_path / "fresh" / "model").state_dict()
    assert not torch.allclose(a["G_AB.model.1.weight"], c["G_AB.model.1.weight"], atol=1e-3)
    runs = json.loads((tmp_path / "tuned" / "run.json").read_text())
    assert "--init-from" in runs["commands"][0]
    # another architecture: one line naming the option and both values; nothing written
    other = run_train(*common, "--out", str(tmp_path / "other"), "--init-from", str(tmp_path / "base" / "model"),
                      "--ngf", "12")
    assert other.returncode == 2 and "--ngf 8 (this run: 12)" in other.stderr, other.stderr
    assert "Traceback" not in other.stderr and not (tmp_path / "other").exists()
    both = run_train(*common, "--out", str(tmp_path / "tuned"), "--init-from", str(tmp_path / "base" / "model"),
                     "--resume")
    assert both.returncode == 2 and "pass only one of them" in both.stderr, both.stderr
    missing = run_train(*common, "--out", str(tmp_path / "m"), "--init-from", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "--init-from" in missing.stderr and "Traceback" not in missing.stderr
