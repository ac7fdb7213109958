#!/usr/bin/env python
"""Train a CycleGAN on unpaired images: the documented entry, the same command as `python -m cyclegan.train`.

    python train/run.py --data ROOT --out RUN_DIR                  # ROOT/trainA, ROOT/trainB
    python train/run.py --data ROOT --out RUN_DIR --resume         # continue where it stopped
    torchrun --nproc_per_node 2 train/run.py --data ROOT --out RUN_DIR   # data parallel

`python train/run.py --help` lists the options; cyclegan/train.py is the script.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cyclegan.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
