"""POIR's planner: MPPI around the BC prior in a learned dynamics ensemble, rewarded for staying
close to the expert's states. Runs behind the same `Actor` interface as any policy."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from rlkit2.agents.poir import losses
from rlkit2.agents.poir.arms import PlannerSettings
from rlkit2.core import BaseActor
from rlkit2.learners import draw_on


class MPPIPlanner:
    """K candidate sequences of length H (the planner settings of arms.py):
    a_t = clip(prior(s_t) + eps_t), s_{t+1} = ensemble mean;
    return = sum_t gamma^t [score(s_{t+1}) - c * disagreement_t]; the first actions are averaged with
    softmax weights. Candidate 0 has eps = 0 (pure BC), so the prior is always on the table. With
    `expert_proposals` = f > 0, candidates 1..round(f (K-1)) use the nearest demo state's action instead of the
    prior (candidate 1 without noise)."""

    def __init__(self, learner: Any, seed: int = 0):
        self.learner = learner
        self.cfg = learner.config
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def plan(self, obs: torch.Tensor, settings: PlannerSettings | None = None) -> torch.Tensor:
        """The first action of the softmax-weighted candidates; `settings` default to the configured planner."""
        lr = self.learner
        st = settings or lr.arms[0]
        K, H = st.num_samples, st.horizon
        s = obs.reshape(1, -1).expand(K, -1)
        # drawn on the CPU (the planner's Generator), then on the learner's device
        noise = draw_on(lr.device, torch.randn((H, K, lr.act_dim), generator=self.generator)) \
            * (st.noise_std * lr.noise_unit)
        noise[:, 0] = 0.0
        n_exp = min(int(round(st.expert_proposals * (K - 1))), K - 1)
        if n_exp:
            noise[:, 1] = 0.0
        total = torch.zeros(K, device=lr.device)
        first = None
        discount = 1.0
        for t in range(H):
            base = lr.prior(s)
            if n_exp:
                base = torch.cat([base[:1], lr.expert_action(s[1:1 + n_exp]), base[1 + n_exp:]])
            a = (base + noise[t]).clamp(-1.0, 1.0)
            if first is None:
                first = a
            s, disagreement = lr.predict(s, a)
            total += discount * (lr.score(s) - self.cfg.disagreement_coef * disagreement)
            discount *= self.cfg.gamma
        assert first is not None
        w = losses.mppi_weights(total, st.temperature)
        return (w.unsqueeze(-1) * first).sum(0)


class POIRActor(BaseActor):
    """Acts by planning (or by the prior when the state is in distribution and gating is on, or when its planner
    arm says not to plan). The exploring actor (`explore=True`) draws an arm per episode by Thompson sampling
    and tells the learner (`active_arm`); the deployed one uses the learner's best arm so far.
    Measures its own per-step latency (`latency_ms`)."""

    def __init__(self, learner: Any, seed: int = 0, explore: bool = False):
        self.learner = learner
        self.planner = MPPIPlanner(learner, seed)
        self.explore = explore
        self.arm_rng = np.random.default_rng(seed)
        self.reset_latency()

    def reset_latency(self) -> None:
        self._times: list[float] = []
        self._planned = 0

    def latency_ms(self) -> dict[str, float]:
        if not self._times:
            return {}
        t = np.asarray(self._times) * 1e3
        return {"act_ms": float(t.mean()), "act_ms_p95": float(np.percentile(t, 95)),
                "planned_fraction": self._planned / len(t)}

    def observe_first(self, observation: Any) -> None:
        if self.explore:
            self.learner.active_arm = self.learner.arm_stats.sample(self.arm_rng)

    def current_arm(self) -> int:
        return int(self.learner.active_arm) if self.explore else self.learner.arm_stats.best()

    @torch.no_grad()
    def act(self, observation: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float32, device=self.learner.device).reshape(1, -1)
        settings = self.learner.arms[self.current_arm()]
        if not settings.plan or self.learner.in_distribution(obs):
            action = self.learner.prior(obs)[0]
        else:
            action = self.planner.plan(obs[0], settings)
            self._planned += 1
        out = action.clamp(-1.0, 1.0).cpu().numpy().astype(np.float32)
        self._times.append(time.perf_counter() - start)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.planner.generator.get_state(), "arm_rng": self.arm_rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.planner.generator.set_state(torch.as_tensor(state["generator"]).cpu())
        if "arm_rng" in state:
            self.arm_rng.bit_generator.state = state["arm_rng"]
