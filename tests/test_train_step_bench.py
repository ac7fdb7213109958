"""bench/train_step.py runs with any --warmup / --repeats and times exactly the steps it reports."""
import re
import subprocess
import sys

import pytest

from conftest import ROOT

TINY = ["--sizes", "32", "--ngf", "8", "--n-blocks", "1", "--ndf", "8", "--threads", "1", "--devices", "cpu"]


@pytest.mark.parametrize("warmup, repeats", [(0, 1), (1, 2)])
def test_times_as_many_steps_as_it_reports(warmup, repeats):
    out = subprocess.run([sys.executable, "bench/train_step.py", *TINY, "--warmup", str(warmup),
                          "--repeats", str(repeats)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(rf"median of {repeats} timed steps per variant \(after {warmup} untimed\)", out.stdout), out.stdout
    assert "ngf 8, 1 blocks, ndf 8" in out.stdout
    rows = [ln for ln in out.stdout.splitlines() if re.match(r"^(baseline|ours)", ln)]
    assert len(rows) == 3 and rows[0].split()[-4] == "1.00x"  # the baseline's own ratio


def test_refuses_zero_repeats():
    out = subprocess.run([sys.executable, "bench/train_step.py", *TINY, "--repeats", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--repeats" in out.stderr
