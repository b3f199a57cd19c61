"""Tiny offline-RL problems whose answers are known, for the offline agent tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rlkit2.replay import TransitionReplay

# ----------------------------------------------------------------------- a chain MDP with exact Q^beta


def chain_exact_q(n: int, p_right: float, gamma: float) -> np.ndarray:
    """Q^beta(s, a) for a in (left, right) on a chain 0..n-1: right from n-2 reaches the goal n-1
    (reward 1, terminal); left from 0 stays at 0; every other step rewards 0."""
    m = n - 1  # non-terminal states 0..n-2
    p = np.zeros((m, m))
    r = np.zeros(m)
    for s in range(m):
        left = max(s - 1, 0)
        p[s, left] += 1 - p_right
        if s + 1 == n - 1:
            r[s] += p_right
        else:
            p[s, s + 1] += p_right
    v = np.linalg.solve(np.eye(m) - gamma * p, r)
    q = np.zeros((m, 2))
    for s in range(m):
        q[s, 0] = gamma * v[max(s - 1, 0)]
        q[s, 1] = 1.0 if s + 1 == n - 1 else gamma * v[s + 1]
    return q


def chain_dataset(n: int, p_right: float, steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Transitions (one-hot s, a in {-1, +1}, r, s', terminal, a') collected by the behaviour policy."""
    rng = np.random.default_rng(seed)
    eye = np.eye(n, dtype=np.float32)
    rows: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "next_observations",
                                             "terminals", "next_actions")}
    s = int(rng.integers(0, n - 1))
    a = 1.0 if rng.random() < p_right else -1.0
    for _ in range(steps):
        s2 = min(max(s + int(a), 0), n - 1)
        term = s2 == n - 1
        a2 = 1.0 if rng.random() < p_right else -1.0
        for k, v in zip(rows, (eye[s], [a], float(term), eye[s2], float(term), [a2]), strict=True):
            rows[k].append(v)
        if term:
            s = int(rng.integers(0, n - 1))
            a = 1.0 if rng.random() < p_right else -1.0
        else:
            s, a = s2, a2
    return {k: np.asarray(v, dtype=np.float32) for k, v in rows.items()}


# ----------------------------------------------------------------------- a 1-D point mass to steer to 0


class PointMass(gym.Env):
    """x in [-1, 1]; x' = clip(x + 0.25 a); reward -|x'|; 15 steps. Optimal: drive x to 0 and stay."""

    horizon = 15

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.x, self.t = 0.0, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.x, self.t / self.horizon], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-1, 1)), 0
        return self._obs(), {}

    def step(self, action):
        a = float(np.clip(np.asarray(action).reshape(-1)[0], -1, 1))
        self.x = float(np.clip(self.x + 0.25 * a, -1, 1))
        self.t += 1
        return self._obs(), -abs(self.x), False, self.t >= self.horizon, {}


def point_mass_dataset(episodes: int = 200, seed: int = 0) -> tuple[dict[str, np.ndarray], float]:
    """A noisy, biased behaviour policy (a = -x + 0.4 + noise): mediocre, but the data cover
    good actions. Returns the transitions (with a') and the behaviour's mean episode return."""
    rng = np.random.default_rng(seed)
    env = PointMass()
    rows: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "next_observations",
                                             "terminals", "next_actions")}
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed * 10_000 + ep)
        act = np.clip(-obs[:1] + 0.4 + rng.normal(0, 0.6, 1), -1, 1).astype(np.float32)
        ret, done = 0.0, False
        while not done:
            nobs, r, term, trunc, _ = env.step(act)
            nact = np.clip(-nobs[:1] + 0.4 + rng.normal(0, 0.6, 1), -1, 1).astype(np.float32)
            for k, v in zip(rows, (obs, act, r, nobs, float(term), nact), strict=True):
                rows[k].append(v)
            ret += r
            obs, act, done = nobs, nact, term or trunc
        returns.append(ret)
    return {k: np.asarray(v, dtype=np.float32) for k, v in rows.items()}, float(np.mean(returns))


def replay_of(arrays: dict[str, np.ndarray], seed: int = 0) -> TransitionReplay:
    return TransitionReplay.from_arrays(arrays, seed=seed)
