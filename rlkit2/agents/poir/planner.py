"""POIR's planner: MPPI around the BC prior in a learned dynamics ensemble, rewarded for staying
close to the expert's states. Runs behind the same `Actor` interface as any policy."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from rlkit2.agents.poir import losses
from rlkit2.core import BaseActor


class MPPIPlanner:
    """K candidate sequences of length H: a_t = clip(prior(s_t) + eps_t), s_{t+1} = ensemble mean;
    return = sum_t gamma^t [score(s_{t+1}) - c * disagreement_t]; the first actions are averaged with
    softmax weights. Candidate 0 has eps = 0 (pure BC), so the prior is always on the table. With
    `expert_proposals` = f > 0, candidates 1..round(f (K-1)) use the nearest demo state's action instead of the
    prior (candidate 1 without noise)."""

    def __init__(self, learner: Any, seed: int = 0):
        self.learner = learner
        self.cfg = learner.config
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def plan(self, obs: torch.Tensor) -> torch.Tensor:
        c, lr = self.cfg, self.learner
        K, H = int(c.num_samples), int(c.horizon)
        act_dim = lr.act_dim
        s = obs.reshape(1, -1).expand(K, -1)
        noise = torch.randn((H, K, act_dim), generator=self.generator) * lr.action_noise
        noise[:, 0] = 0.0
        n_exp = int(round(float(c.expert_proposals) * (K - 1)))
        if n_exp:
            noise[:, 1] = 0.0
        total = torch.zeros(K)
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
            total += discount * (lr.score(s) - c.disagreement_coef * disagreement)
            discount *= c.gamma
        assert first is not None
        w = losses.mppi_weights(total, c.temperature)
        return (w.unsqueeze(-1) * first).sum(0)


class POIRActor(BaseActor):
    """Acts by planning (or by the prior when the state is in distribution and gating is on).
    Measures its own per-step latency (`latency_ms`)."""

    def __init__(self, learner: Any, seed: int = 0):
        self.learner = learner
        self.planner = MPPIPlanner(learner, seed)
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

    @torch.no_grad()
    def act(self, observation: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float32).reshape(1, -1)
        if self.learner.in_distribution(obs):
            action = self.learner.prior(obs)[0]
        else:
            action = self.planner.plan(obs[0])
            self._planned += 1
        out = action.clamp(-1.0, 1.0).numpy().astype(np.float32)
        self._times.append(time.perf_counter() - start)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.planner.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.planner.generator.set_state(state["generator"])
