"""Reference levels that make an offline score mean something: the zero-action policy (evaluated) and the
behaviour policy that collected the dataset (from the file's metadata), each on the run's own score scale.

Used by every offline run (written to `references.json` in the run dir, drawn as lines on its learning curve,
printed beside its final score) and by the benchmark grid (`experiments/offline/grid.py`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rlkit2.core import FunctionActor

SCORE_KEY = "eval/normalized_score"


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def zero_action_metrics(env: Any, env_cfg: Any, metadata: Mapping[str, Any] | None, episodes: int,
                        seed: int) -> dict[str, float]:
    """`evaluate`'s metrics for the policy that always outputs the zero action (the centre of the action box
    when zero lies outside it), with the same score functions as the runs' evaluations."""
    from rlkit2.data.scores import evaluate_with_scores

    low, high = np.asarray(env.action_space.low), np.asarray(env.action_space.high)
    still = np.where((low <= 0) & (high >= 0), 0.0, (low + high) / 2).astype(env.action_space.dtype)
    return evaluate_with_scores(env, FunctionActor(lambda _obs: still), episodes, env_cfg, metadata, seed=seed)


def behaviour_return(metadata: Mapping[str, Any] | None) -> tuple[float, str] | None:
    """(return, what it is) of the policy behind a generated dataset, from its metadata; None when unknown
    (D4RL's own files do not say)."""
    md = metadata or {}
    if _num(md.get("policy_return")):
        what = ("the medium snapshot's return (the file is its training run's replay up to that snapshot)"
                if md.get("kind") == "medium-replay" else "the behaviour policy's return")
        return float(md["policy_return"]), what
    if _num(md.get("policy_return_medium")) and _num(md.get("policy_return_expert")):
        ret = 0.5 * (float(md["policy_return_medium"]) + float(md["policy_return_expert"]))
        return ret, "the mean of the medium and expert policies' returns (the data are half each)"
    return None


DATASET_NOTE = ("the dataset's mean episode return: the behaviour policy as it collected the data (sampled actions; "
                "a policy's greedy return can be above or below it)")


def run_references(env: Any, env_cfg: Any, metadata: Mapping[str, Any] | None, episodes: int,
                   seed: int, dataset_return: float | None = None) -> dict[str, dict[str, Any]]:
    """{"zero action": {...}, "behaviour policy": {...}, "dataset episodes": {...}} on the scale the run reports
    (`eval/normalized_score` when the env has reference returns, else `eval/return`): `level`, `key`, `return`,
    `note`. "behaviour policy" needs the file's metadata; "dataset episodes" `dataset_return`."""
    from rlkit2.data.scores import score_function

    fn = score_function(env_cfg, metadata)
    key = SCORE_KEY if fn is not None else "eval/return"
    zero = zero_action_metrics(env, env_cfg, metadata, episodes, seed)
    out = {"zero action": {"key": key, "level": float(zero[key]), "return": float(zero["eval/return"]),
                           "note": f"a policy that outputs zeros; {episodes} evaluation episodes"}}
    beh = behaviour_return(metadata)
    if beh is not None:
        ret, what = beh
        out["behaviour policy"] = {"key": key, "level": float(fn(ret)) if fn is not None else ret, "return": ret,
                                   "note": f"dataset metadata: {what}"}
    if dataset_return is not None and _num(dataset_return):
        ret = float(dataset_return)
        out["dataset episodes"] = {"key": key, "level": float(fn(ret)) if fn is not None else ret, "return": ret,
                                   "note": DATASET_NOTE}
    return out
