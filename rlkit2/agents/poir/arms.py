"""Online planner selection: how POIR fine-tunes its planner from interaction in the deployment env.

The offline phase cannot tell which way of planning works best in an environment it has never seen (how much
to trust the return-to-distribution proposals, how far to look ahead, or whether to plan at all rather than
follow the BC prior). Each setting is an *arm*; during online fine-tuning the exploring actor picks one per
episode by Thompson sampling on the episodes' success (Beta(1, 1) prior), and the deployed policy uses the
arm played most (ties: the higher posterior mean). Because the prior itself can be an arm (`plan: false`),
the fine-tuned agent ends near the better of planning and plain BC in the deployment env.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlkit2.core import ConfigError


@dataclasses.dataclass(frozen=True)
class PlannerSettings:
    """One way of acting: plan with MPPI (these settings) or, with `plan=False`, follow the BC prior."""

    plan: bool
    horizon: int
    num_samples: int
    expert_proposals: float
    noise_std: float
    temperature: float


ARM_KEYS = tuple(f.name for f in dataclasses.fields(PlannerSettings))


def arm_settings(config: Any, overrides: Mapping[str, Any]) -> PlannerSettings:
    """The agent's configured planner with one arm's `overrides` applied."""
    unknown = sorted(set(overrides) - set(ARM_KEYS))
    if unknown:
        raise ConfigError(f"agent.planner_arms: unknown key(s) {unknown}; an arm may set {list(ARM_KEYS)}")
    v = {"plan": True, **{k: getattr(config, k) for k in ARM_KEYS if k != "plan"}, **dict(overrides)}
    s = PlannerSettings(plan=bool(v["plan"]), horizon=int(v["horizon"]), num_samples=int(v["num_samples"]),
                        expert_proposals=float(v["expert_proposals"]), noise_std=float(v["noise_std"]),
                        temperature=float(v["temperature"]))
    if s.plan and (s.horizon < 1 or s.num_samples < 1 or not 0.0 <= s.expert_proposals <= 1.0):
        raise ConfigError(f"agent.planner_arms: {dict(overrides)} gives horizon={s.horizon}, "
                          f"num_samples={s.num_samples}, expert_proposals={s.expert_proposals}; expected "
                          "horizon >= 1, num_samples >= 1, 0 <= expert_proposals <= 1")
    return s


class ArmStats:
    """Success counts per arm: Thompson sampling while exploring, the most-played arm for deployment."""

    def __init__(self, num_arms: int):
        self.trials = np.zeros(num_arms)
        self.successes = np.zeros(num_arms)

    def __len__(self) -> int:
        return len(self.trials)

    def update(self, arm: int, success: bool) -> None:
        self.trials[arm] += 1
        self.successes[arm] += float(success)

    def posterior_mean(self) -> np.ndarray:
        return (1.0 + self.successes) / (2.0 + self.trials)

    def sample(self, rng: np.random.Generator) -> int:
        """Thompson sampling: the arm whose Beta(1 + successes, 1 + failures) draw is highest."""
        if len(self) == 1:
            return 0
        draws = rng.beta(1.0 + self.successes, 1.0 + self.trials - self.successes)
        return int(np.argmax(draws))

    def best(self) -> int:
        """The arm to deploy: played most (bandit practice: robust to one lucky episode of a rare arm), ties broken
        by the posterior mean, then by order (arm 0, the configured planner, before any episode)."""
        key = self.trials * 1e6 + self.posterior_mean()
        return int(np.argmax(key))

    def metrics(self) -> dict[str, float]:
        out = {"online/best_arm": float(self.best())}
        for k, (n, s) in enumerate(zip(self.trials, self.successes, strict=True)):
            out[f"online/arm{k}_episodes"] = float(n)
            if n:
                out[f"online/arm{k}_success"] = float(s / n)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"trials": self.trials.copy(), "successes": self.successes.copy()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        trials, successes = np.asarray(state["trials"], float), np.asarray(state["successes"], float)
        if not trials.any():  # no arm played yet (an offline checkpoint): the configured arms start fresh
            self.trials, self.successes = np.zeros_like(self.trials), np.zeros_like(self.successes)
            return
        if trials.shape != self.trials.shape:
            raise ConfigError(f"checkpoint has statistics for {len(trials)} planner arms, the config lists "
                              f"{len(self.trials)} (agent.planner_arms changed?)")
        self.trials, self.successes = trials.copy(), successes.copy()


def build_arms(config: Any) -> list[PlannerSettings]:
    arms: Sequence[Mapping[str, Any]] = list(config.planner_arms) or [{}]
    return [arm_settings(config, dict(a)) for a in arms]
