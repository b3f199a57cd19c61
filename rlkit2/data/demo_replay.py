"""Replaying a robomimic demo from its recorded `states`: does it reproduce in this env?"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlkit2.core import DataError
from rlkit2.data.robomimic import Demo


@dataclasses.dataclass
class DemoReplay:
    """How closely a demo reproduces when its actions are replayed from its first recorded state."""

    steps: int
    max_state_error: float  # max |state - recorded state| over the replayed steps (states[1:])
    max_obs_error: float  # max |low-dim obs - recorded obs| (obs[0] after the reset, then next_obs)
    first_bad_step: int | None  # the first step whose state deviates by more than `tolerance` (None: none)

    def reproduces(self, tolerance: float) -> bool:
        return self.max_state_error <= tolerance and self.max_obs_error <= tolerance


def replay_demo(env: Any, demo: Demo, *, obs_keys: Sequence[str] | None = None,
                tolerance: float = 1e-6) -> DemoReplay:
    """Reset `env` (the robosuite adapter: `reset_to_state`, `sim_state`, `raw_obs_dict`) to `demo.states[0]`,
    replay `demo.actions` and compare every state and low-dim observation (`obs_keys`, default the env's) with
    the recorded ones. The env must be the one the demo was collected in, without deployment shifts (a
    dynamics shift or action noise changes what the actions do)."""
    if demo.states is None or len(demo.states) != len(demo):
        raise DataError(f"demo '{demo.name}' has no recorded states (one per step) to replay from")
    keys = list(env.obs_keys if obs_keys is None else obs_keys)
    missing = [k for k in keys if k not in demo.obs or demo.next_obs is None or k not in demo.next_obs]
    if missing:
        raise DataError(f"demo '{demo.name}' lacks obs/next_obs keys {missing} to compare")
    env.reset()  # the model as the env builds it, then the recorded state on top
    env.reset_to_state(np.asarray(demo.states[0]))

    def obs_error(t: int, recorded: Mapping[str, np.ndarray]) -> float:
        now = env.raw_obs_dict(keys)
        return max(float(np.max(np.abs(np.asarray(now[k], np.float64) - np.asarray(recorded[k][t], np.float64))))
                   for k in keys)

    max_obs = obs_error(0, demo.obs)
    max_state, first_bad = 0.0, None
    T = len(demo)
    for t in range(T):
        env.step(np.asarray(demo.actions[t]))
        assert demo.next_obs is not None
        max_obs = max(max_obs, obs_error(t, demo.next_obs))
        if t + 1 < T:
            err = float(np.max(np.abs(np.asarray(env.sim_state(), np.float64) - demo.states[t + 1])))
            max_state = max(max_state, err)
            if first_bad is None and err > tolerance:
                first_bad = t + 1
    return DemoReplay(T, max_state, max_obs, first_bad)
