"""Env-step recording and collection for generated datasets: `RecordingWrapper` records every step (with
`qpos`/`qvel`), `collect` runs an actor for a number of rows in episodes, written in resumable chunks under the
work dir, and the actor factories build the behaviour actors (uniform random, a trained snapshot's explorer,
the shipped snapshots' medium-replay schedule).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit2.core import EnvironmentLoop, FunctionActor
from rlkit2.data.behaviour import load_snapshot_agent, replay_learning_starts
from rlkit2.data.genconfig import GenerationConfig, env_config


class RecordingWrapper(gym.Wrapper):
    """Records every step (s, a, r, s', terminated, truncated, qpos, qvel) of the env it wraps."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.rows: dict[str, list[Any]] = {k: [] for k in ("observations", "actions", "rewards", "next_observations",
                                                             "terminals", "timeouts", "qpos", "qvel")}
        self._obs: np.ndarray | None = None

    def _state(self) -> tuple[np.ndarray, np.ndarray]:
        data = self.env.unwrapped.data  # type: ignore[attr-defined]
        return np.array(data.qpos), np.array(data.qvel)

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        self._obs = np.asarray(obs)
        self._qpos, self._qvel = self._state()
        return obs, info

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        r = self.rows
        r["observations"].append(self._obs)
        r["actions"].append(np.asarray(action, np.float32))
        r["rewards"].append(float(reward))
        r["next_observations"].append(np.asarray(obs))
        r["terminals"].append(bool(terminated))
        r["timeouts"].append(bool(truncated) and not terminated)
        r["qpos"].append(self._qpos)
        r["qvel"].append(self._qvel)
        self._obs = np.asarray(obs)
        self._qpos, self._qvel = self._state()
        return obs, reward, terminated, truncated, info

    def pop(self) -> dict[str, np.ndarray]:
        out = {k: np.asarray(v) for k, v in self.rows.items()}
        for v in self.rows.values():
            v.clear()
        return out


def collect(cfg: GenerationConfig, kind: str, make_actor: Callable[[int], Any], n: int,
            lanes: int = 1) -> dict[str, np.ndarray]:
    """Run `make_actor(seed)` for `n` rows in 1000-step episodes, resumable chunk by chunk.

    Episode k resets with seed `seed * 1_000_003 + k` and chunk c's actor is seeded from c, so a resumed
    collection continues exactly where the saved chunks stop. `lanes > 1` (an actor that acts on a batch of
    observations): that many episodes run side by side, one batched forward pass a step (the per-step torch
    call costs as much as the MuJoCo step), their rows stored in episode order; the noise then differs from
    a one-lane collection, so `kind` (the chunk folder) must say the lane count.
    """
    from tqdm.auto import tqdm

    from rlkit2.registry import make_env

    # Chunks do not depend on n (episode seeds and actor seeds are by index), so a smaller dataset is a
    # prefix of a larger one and growing `transitions` later reuses what was collected.
    cdir = cfg.work_dir / "collect" / kind
    cdir.mkdir(parents=True, exist_ok=True)
    chunks = sorted(cdir.glob("chunk_*.npz"))
    parts = [dict(np.load(p)) for p in chunks]
    have = sum(len(p["rewards"]) for p in parts)
    episode = sum(int(p["episodes"]) for p in parts)
    envs = [RecordingWrapper(make_env(env_config(cfg), cfg.seed)) for _ in range(lanes)]
    bar = tqdm(total=n, initial=min(have, n), desc=f"{cfg.env} {kind}", disable=not cfg.progress,
               dynamic_ncols=True, mininterval=2.0)
    try:
        while have < n:
            # one actor per chunk, seeded by the chunk index: a resumed collection equals an uninterrupted one
            actor = make_actor(cfg.seed * 7_919 + len(chunks))
            if callable(getattr(actor, "start_at_row", None)):  # an actor whose policy depends on the row
                actor.start_at_row(have)
            loop = EnvironmentLoop(envs[0], actor, max_episode_steps=cfg.max_episode_steps)
            chunk_rows, chunk_eps = 0, 0
            while chunk_rows < cfg.chunk_steps and have + chunk_rows < n:
                seeds = [cfg.seed * 1_000_003 + episode + i for i in range(lanes)]
                length = (loop.run_episode(seed=seeds[0]).length if lanes == 1
                          else _lockstep_episodes(envs, actor, seeds, cfg.max_episode_steps))
                episode += lanes
                chunk_eps += lanes
                chunk_rows += length
                bar.update(length)
            popped = [e.pop() for e in envs]
            rows = {k: np.concatenate([p[k] for p in popped]) for k in popped[0]}
            np.savez(cdir / f".chunk_{len(chunks):05d}.npz", episodes=chunk_eps, **rows)
            os.replace(cdir / f".chunk_{len(chunks):05d}.npz", cdir / f"chunk_{len(chunks):05d}.npz")
            chunks.append(cdir / f"chunk_{len(chunks):05d}.npz")
            parts.append(rows)
            have += chunk_rows
    finally:
        bar.close()
        for e in envs:
            e.close()
    rows = {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0] if k != "episodes"}
    if not (rows["terminals"][-1] or rows["timeouts"][-1]):
        rows["timeouts"][-1] = True  # the last episode is cut here: a time-limit-like end, not a fall
    return rows


def _lockstep_episodes(envs: list[RecordingWrapper], actor: Any, seeds: list[int], max_steps: int) -> int:
    """One episode in each env (reset with its seed), stepped together with one batched `actor.act` a step;
    returns the rows recorded. Each env records only its own episode, so popping them in order gives the
    episodes in seed order."""
    obs = [np.asarray(e.reset(seed=s)[0]) for e, s in zip(envs, seeds, strict=True)]
    live, lengths = list(range(len(envs))), [0] * len(envs)
    while live:
        actions = actor.act(np.stack([obs[i] for i in live]))
        still = []
        for i, a in zip(live, actions, strict=True):
            obs[i], _, terminated, truncated, _ = envs[i].step(a)
            lengths[i] += 1
            if not (terminated or truncated or lengths[i] >= max_steps):
                still.append(i)
            elif not (terminated or truncated):  # cut by max_steps: recorded as a time-limit end
                envs[i].rows["timeouts"][-1] = True
        live = still
    return sum(lengths)


def random_actor_factory(cfg: GenerationConfig) -> Callable[[int], Any]:
    space: Any = gym.make(cfg.gym_id).action_space

    def make(seed: int) -> Any:
        rng = np.random.default_rng(seed)
        return FunctionActor(lambda obs: rng.uniform(space.low, space.high).astype(np.float32))

    return make


def snapshot_actor_factory(path: str) -> Callable[[int], Any]:
    def make(seed: int) -> Any:
        import torch

        torch.manual_seed(seed)  # the explorer samples with torch's global RNG
        return load_snapshot_agent(path, seed).explorer

    return make


def split_infos(rows: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    infos: dict[str, np.ndarray] = {k: rows[k] for k in ("qpos", "qvel") if k in rows}
    return {k: v for k, v in rows.items() if k not in infos}, infos



def replay_actor_factory(cfg: GenerationConfig, sel: dict[str, Any]) -> Callable[[int], Any]:
    """medium-replay from shipped snapshots: row t of the SAC run was collected by uniform random actions
    during the warm-up, then by the stochastic explorer of the latest snapshot taken at or before step t."""
    from rlkit2.data.shipped import ScheduledActor

    snaps = sel["snapshots"]
    steps = [int(e["step"]) for e in snaps]
    learning_starts = replay_learning_starts(cfg, sel)
    space: Any = gym.make(cfg.gym_id).action_space

    def make(seed: int) -> Any:
        rng = np.random.default_rng(seed)
        explorers = [e["loaded"].make_explorer(seed * 1_009 + i) for i, e in enumerate(snaps)]
        return ScheduledActor(explorers, steps, learning_starts,
                              lambda: rng.uniform(space.low, space.high).astype(np.float32))

    return make
