"""Shared test setup: the repository root and tests/ on sys.path, tiny data and a training-run helper."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from synthetic import make_unpaired  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--update-screenshot", action="store_true",
                     help="tests/test_browser.py copies its screenshot to docs/screenshot.png (the README's)")


TINY = ["--ngf", "8", "--n-blocks", "3", "--ndf", "8", "--load-size", "72", "--crop-size", "64", "--threads", "1"]


@pytest.fixture
def one_thread():
    """torch on one thread for the test (the paper-size stand-in networks; keeps the suite's two cores fair)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session", autouse=True)
def cache_in_tmp(tmp_path_factory):
    """The command-line tools' ONNX export cache (cyclegan.backends.default_cache_dir) in a temporary folder,
    not the user's ~/.cache (subprocesses inherit it)."""
    os.environ["CYCLEGAN_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """ROOT/trainA, trainB (8 images each), testA, testB (2 each) of 64x64 generated scenes."""
    return make_unpaired(tmp_path_factory.mktemp("data"), n=8, size=64)


def run_train(*args: str, env: dict | None = None, launcher: list[str] | None = None,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs train/run.py in a subprocess with the tiny architecture (unless overridden) and no network."""
    cmd = (launcher or [sys.executable]) + [str(ROOT / "train" / "run.py"), *TINY, *args]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT)
