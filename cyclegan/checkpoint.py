"""Training checkpoints as one safetensors file, written atomically.

Nested state (networks, optimizers, pools, RNG states) is flattened: tensors become safetensors entries
named by their path ("opt_G/state/3/exp_avg"), everything else (numbers, lists, strings) goes into the
file's metadata as JSON. No pickle anywhere, so a checkpoint from someone else cannot run code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

SEP = "/"


class CheckpointError(RuntimeError):
    pass


def _flatten(obj, prefix: str, tensors: dict, plain: dict) -> None:
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
    elif isinstance(obj, dict) and obj:
        for k, v in obj.items():
            key = str(k) if not isinstance(k, int) else f"#{k}"  # remember int keys (optimizer state ids)
            _flatten(v, f"{prefix}{SEP}{key}" if prefix else key, tensors, plain)
    else:
        plain[prefix] = obj


def _set(root: dict, path: str, value) -> None:
    keys = [int(k[1:]) if k.startswith("#") else k for k in path.split(SEP)]
    node = root
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Writes `state` to a temporary file beside `path`, then renames it over `path`: a crash at any moment
    leaves either the previous checkpoint or the new one, never half a file."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    plain: dict = {}
    _flatten(state, "", tensors, plain)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"plain": json.dumps(plain), "format": "cyclegan-train-v1"})
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, device: str = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state: dict = {}
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = f.metadata() or {}
            if meta.get("format") != "cyclegan-train-v1":
                raise CheckpointError(f"{path} is not a cyclegan training checkpoint")
            for key in f.keys():
                _set(state, key, f.get_tensor(key))
        for key, value in json.loads(meta["plain"]).items():
            _set(state, key, value)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    return state
