"""Saved policies: a trained control agent's greedy actor as one file, usable without Hydra or training state.

`save_policy(actor, path, **info)` pickles the actor (a `TorchPolicyActor` holding the policy network and,
inside it, the observation normalisation; for POIR the BC prior, model and planner) with torch.save,
atomically. `load_policy(run_dir_or_file)` returns it: call it on an observation to get an action.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from rlkit2.checkpoint import CheckpointError, atomic_write_bytes

POLICY_FILE = "policy.pt"


def save_policy(actor: Any, path: str | os.PathLike[str], **info: Any) -> Path:
    buf = io.BytesIO()
    torch.save({"policy": actor, "info": info, "format": "rlkit2-policy-v1"}, buf)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_policy(path: str | os.PathLike[str], *, with_info: bool = False) -> Any:
    """The policy saved in a run dir (`<run_dir>/policy.pt`) or a policy file: `policy(obs) -> action`."""
    p = Path(path)
    if p.is_dir():
        p = p / POLICY_FILE
    if not p.is_file():
        raise CheckpointError(f"no saved policy at {path} (a run dir holds {POLICY_FILE} once training ends)")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad or foreign file
        raise CheckpointError(f"{p} is not a readable rlkit2 policy file: {e}") from e
    if not isinstance(blob, dict) or blob.get("format") != "rlkit2-policy-v1":
        raise CheckpointError(f"{p} is not an rlkit2 policy file (no 'rlkit2-policy-v1' marker)")
    return (blob["policy"], blob["info"]) if with_info else blob["policy"]
