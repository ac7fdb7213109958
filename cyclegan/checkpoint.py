"""Training checkpoints (everything an exact resume needs) as one safetensors file, written atomically.

Why safetensors and not `torch.save` read back with `torch.load(weights_only=True)`: a checkpoint is the kind of
file people pass around ("resume from my run"), and safetensors has no code path that can run anything, while
weights_only is a restricted unpickler whose safety depends on its allow list (it has been bypassed before:
CVE-2025-32434, torch <= 2.5.1). It is also the format of the published model.safetensors, so one reader
covers both, and the header can be inspected without loading. The price is this module's ~40 lines that
turn the nested state into a plain layout:
  - every tensor is an entry named by its path in the state, parts joined by "/":
    "trainer/model/G_AB.model.1.weight", "trainer/opt_G/state/#3/exp_avg", "rng/torch";
  - everything else (numbers, strings, lists, None, empty dicts) is one JSON object in the header's
    metadata, "plain": {path: value};
  - integer dict keys (the optimizers' parameter ids) are written "#3", so they come back as ints;
  - metadata "format" = "cyclegan-train-v1".
Reading it back needs no code from the file's author; a file without that format tag is refused.
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
            if isinstance(k, int) and not isinstance(k, bool):
                key = f"#{k}"  # remember int keys (optimizer state ids)
            elif isinstance(k, str) and SEP not in k and not k.startswith("#"):
                key = k
            else:
                raise CheckpointError(f"cannot store the state key {k!r} at {prefix or 'the top'}: keys are ints "
                                      f"or strings without '{SEP}' that do not start with '#'")
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
