"""A user-defined Gymnasium environment and a dataset for it, used by the examples.

`PointMass-v0`: a point in the plane [-1, 1]^2 moved by a velocity action; reward is minus its distance
to the origin, so the best policy steers straight home. Nothing here is part of rlkit2: it stands for
*your* environment and *your* data.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

ENV_ID = "PointMass-v0"
HORIZON = 50


class PointMassEnv(gym.Env):
    """obs: position (2,); action: velocity in [-1, 1]^2; reward: -|position|; 50 steps an episode."""

    def __init__(self, speed: float = 0.1):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.speed = speed
        self.pos = np.zeros(2, np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32)
        return self.pos.copy(), {}

    def step(self, action):
        a = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        self.pos = np.clip(self.pos + self.speed * a, -1.0, 1.0).astype(np.float32)
        reward = -float(np.linalg.norm(self.pos))
        return self.pos.copy(), reward, False, False, {}


def register() -> None:
    """Register the env with Gymnasium, so `gym.make` (and rlkit2 env configs, `env.id=PointMass-v0`) find it."""
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=PointMassEnv, max_episode_steps=HORIZON)


def make_dataset(episodes: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """D4RL-format arrays from a mixed behaviour policy: half the episodes a noisy controller that steers home,
    half uniformly random actions. Keys: observations, actions, rewards, next_observations, terminals,
    timeouts (each episode ends by its time limit, so terminals are all 0)."""
    register()
    rng = np.random.default_rng(seed)
    env = gym.make(ENV_ID)
    rows: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "next_observations",
                                              "terminals", "timeouts")}
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed * 100_000 + ep)
        expert = ep % 2 == 0
        for t in range(HORIZON):
            if expert:
                action = np.clip(-5.0 * obs + rng.normal(0.0, 0.3, 2), -1.0, 1.0)
            else:
                action = rng.uniform(-1.0, 1.0, 2)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for k, v in zip(rows, (obs, action, reward, next_obs, terminated, t == HORIZON - 1), strict=True):
                rows[k].append(v)
            obs = next_obs
    env.close()
    out = {k: np.asarray(v, np.float32) for k, v in rows.items()}
    out["terminals"], out["timeouts"] = out["terminals"].astype(bool), out["timeouts"].astype(bool)
    return out


def random_return(episodes: int = 10, seed: int = 10_000) -> float:
    """Mean return of the uniformly random policy (the floor a trained policy must beat)."""
    import rlkit2

    register()
    env = gym.make(ENV_ID)
    rng = np.random.default_rng(seed)
    actor = rlkit2.FunctionActor(lambda obs: rng.uniform(-1.0, 1.0, 2).astype(np.float32))
    return rlkit2.evaluate(env, actor, episodes, seed=seed)["eval/return"]
