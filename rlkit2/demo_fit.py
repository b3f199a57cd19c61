"""How closely a policy reproduces demonstrations: its open-loop action error.

The policy acts on a demo's observations in order, as it would in the env (the `Actor` hooks: `observe_first`
at the demo's start, so a recurrent actor restarts; `observe` after every step with the demo's next
observation), and each action is compared with the demonstrated one. On held-out demos (robomimic's `valid`
mask: `env.valid_filter_key`) this is the imitation runner's validation measure, `valid/action_mse`; on the
training demos it tells an under-fit policy from one that fits (`python -m experiments.imitation.study fit`).
It measures the deployed policy, whatever its loss: a planner (POIR) departs from the demos by design.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rlkit2.data.robomimic import Demo


def demo_action_error(actor: Any, demos: Sequence[Demo], obs_keys: Sequence[str]) -> dict[str, Any]:
    """Mean squared difference between `actor`'s actions (as it acts when evaluated: greedy for BC, planned for
    POIR, sampled for a low-noise BC-RNN) and the demonstrated ones over `demos`: overall (`mse`), per action dim
    (`mse_per_dim`), and the counts it is over."""
    if not demos:
        raise ValueError("demo_action_error needs at least one demo")
    sq: list[np.ndarray] = []
    for demo in demos:
        obs = demo.flat_obs(obs_keys)
        actor.observe_first(obs[0])
        actions = []
        for t in range(len(obs)):
            a = np.asarray(actor.act(obs[t]), dtype=np.float32).reshape(-1)
            actions.append(a)
            if t + 1 < len(obs):
                actor.observe(a, obs[t + 1], 0.0, False, False)
        acted, shown = np.stack(actions), np.asarray(demo.actions, np.float32)
        if acted.shape != shown.shape:
            raise ValueError(f"demo '{demo.name}': the policy's actions are {acted.shape[1:]} wide, the demo's "
                             f"{shown.shape[1:]}")
        sq.append((acted - shown) ** 2)
    per_dim = np.concatenate(sq).mean(axis=0)
    return {"mse": float(per_dim.mean()), "mse_per_dim": [float(x) for x in per_dim], "demos": len(demos),
            "transitions": int(sum(len(s) for s in sq))}
