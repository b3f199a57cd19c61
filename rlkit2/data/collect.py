"""Env-step recording and collection for generated datasets: `RecordingWrapper` records every step (with
`qpos`/`qvel`), `collect` runs an actor for a number of rows in episodes, written in resumable chunks under the
work dir (several processes collect chunks at once), and the actor factories build the behaviour actors
(uniform random, a trained snapshot's explorer, the shipped snapshots' medium-replay schedule).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit2.core import EnvironmentLoop, FunctionActor
from rlkit2.data.behaviour import load_snapshot_agent, replay_learning_starts
from rlkit2.data.genconfig import GenerationConfig, env_config
from rlkit2.validation import logical_cpus

ROW_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts", "qpos", "qvel")


class RecordingWrapper(gym.Wrapper):
    """Records every step (s, a, r, s', terminated, truncated, qpos, qvel) of the env it wraps."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.rows: dict[str, list[Any]] = {k: [] for k in ROW_FIELDS}
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
            lanes: int = 1, workers: int | None = None) -> dict[str, np.ndarray]:
    """Run `make_actor(seed)` for `n` rows in (at most) 1000-step episodes, in resumable chunks.

    Chunk c holds episodes c*E ... (c+1)*E - 1 (E = `cfg.chunk_episodes`, rounded up to a multiple of `lanes`):
    episode k resets with seed `seed * 1_000_003 + k`, and chunk c's actor is seeded from c. A chunk depends on
    nothing but its index, so chunks are collected by `workers` processes at once (default `cfg.workers`; 0 = one
    per CPU) and the rows are the same whatever the number of workers, a resumed collection equals an
    uninterrupted one, and a smaller dataset is a prefix of a larger one. The rows are chunks 0, 1, ... in order,
    cut at `n`. `lanes > 1` (an actor that acts on a batch of observations): that many episodes run side by side,
    one batched forward pass a step (the per-step torch call costs as much as the MuJoCo step), stored in episode
    order; the noise then differs from a one-lane collection, so `kind` (the chunk folder) must say the lane
    count. An actor whose policy depends on the row (`start_at_row`, medium-replay's schedule) needs the rows
    before its chunk: it is collected by one process.
    """
    from tqdm.auto import tqdm

    per_chunk = -(-max(cfg.chunk_episodes, lanes) // lanes) * lanes
    cdir = cfg.work_dir / "collect" / f"{kind}-e{per_chunk}"  # the data depend on the chunk size
    cdir.mkdir(parents=True, exist_ok=True)
    job = _ChunkJob(cfg, make_actor, lanes, per_chunk, cdir)
    done = {int(p.stem.split("_")[1]): _rows_in(p) for p in cdir.glob("chunk_*.npz")}
    bar = tqdm(total=n, initial=min(_prefix(done)[0], n), desc=f"{cfg.env} {kind}", disable=not cfg.progress,
               dynamic_ncols=True, mininterval=2.0)
    workers = (cfg.workers if workers is None else workers) or logical_cpus()
    try:
        if workers > 1 and not callable(getattr(make_actor(0), "start_at_row", None)):
            _collect_parallel(job, done, n, workers, bar)
        else:
            while (k := _prefix(done))[0] < n:
                done[k[1]] = job.run(k[1], start_row=k[0])
                bar.update(min(done[k[1]], n - k[0]))
    finally:
        bar.close()
        _close_envs()
    parts, have = [], 0
    for c in range(_prefix(done)[1]):
        if have >= n:
            break
        parts.append(dict(np.load(cdir / f"chunk_{c:05d}.npz")))
        have += len(parts[-1]["rewards"])
    rows = {k: np.concatenate([p[k] for p in parts])[:n] for k in ROW_FIELDS}  # (a chunk may hold other keys)
    if not (rows["terminals"][-1] or rows["timeouts"][-1]):
        rows["timeouts"][-1] = True  # the last episode is cut here: a time-limit-like end, not a fall
    return rows


def _rows_in(path: Any) -> int:
    with np.load(path) as z:
        return int(z["rewards"].shape[0])


def _prefix(done: dict[int, int]) -> tuple[int, int]:
    """(rows in the chunks 0..k-1 all collected, k: the first chunk not collected)."""
    rows, k = 0, 0
    while k in done:
        rows, k = rows + done[k], k + 1
    return rows, k


@dataclasses.dataclass
class _ChunkJob:
    cfg: GenerationConfig
    make_actor: Callable[[int], Any]
    lanes: int
    episodes: int
    cdir: Any

    def run(self, c: int, start_row: int | None = None) -> int:
        """Collect chunk `c` into its file (written whole, then renamed); returns its row count."""
        cfg, lanes = self.cfg, self.lanes
        envs = _envs(cfg, lanes)
        for env in envs:
            env.pop()  # nothing left from an interrupted chunk
        actor = self.make_actor(cfg.seed * 7_919 + c)  # seeded by the chunk index alone
        if callable(getattr(actor, "start_at_row", None)):  # a policy that depends on the row
            if start_row is None:
                raise RuntimeError("a row-dependent actor's chunks are collected in order, by one process")
            actor.start_at_row(start_row)
        loop = EnvironmentLoop(envs[0], actor, max_episode_steps=cfg.max_episode_steps)
        first = cfg.seed * 1_000_003 + c * self.episodes
        for e in range(first, first + self.episodes, lanes):
            if lanes == 1:
                loop.run_episode(seed=e)
            else:
                _lockstep_episodes(envs, actor, list(range(e, e + lanes)), cfg.max_episode_steps)
        popped = [env.pop() for env in envs]
        rows = {k: np.concatenate([p[k] for p in popped]) for k in popped[0]}
        tmp = self.cdir / f".chunk_{c:05d}.{os.getpid()}.npz"
        np.savez(tmp, **rows)
        os.replace(tmp, self.cdir / f"chunk_{c:05d}.npz")
        return len(rows["rewards"])


_ENVS: dict[tuple[Any, ...], list[RecordingWrapper]] = {}  # a process's envs, kept across its chunks


def _envs(cfg: GenerationConfig, lanes: int) -> list[RecordingWrapper]:
    from rlkit2.registry import make_env

    key = (cfg.gym_id, cfg.max_episode_steps, cfg.seed, lanes)  # what `env_config` and the seeding read
    if key not in _ENVS:
        _close_envs()
        _ENVS[key] = [RecordingWrapper(make_env(env_config(cfg), cfg.seed)) for _ in range(lanes)]
    return _ENVS[key]


def _close_envs() -> None:
    for envs in _ENVS.values():
        for e in envs:
            e.close()
    _ENVS.clear()


_JOB: _ChunkJob | None = None  # the forked workers' job (a closure cannot be pickled to them)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker


def _run_forked(c: int) -> tuple[int, int]:
    assert _JOB is not None
    return c, _JOB.run(c)


def _collect_parallel(job: _ChunkJob, done: dict[int, int], n: int, workers: int, bar: Any) -> None:
    """Chunks in index order by `workers` forked processes, until the chunks 0..k hold `n` rows (at most
    workers - 1 chunks past them are collected too; they stay on disk for a larger dataset)."""
    import concurrent.futures as cf
    import multiprocessing as mp

    global _JOB
    _JOB = job
    pending: dict[cf.Future[tuple[int, int]], int] = {}
    try:
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_worker_init) as pool:
            nxt = 0
            while True:
                have, k = _prefix(done)
                if have >= n:
                    break
                while len(pending) < workers:
                    while nxt in done or nxt in pending.values():
                        nxt += 1
                    pending[pool.submit(_run_forked, nxt)] = nxt
                finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for f in finished:
                    c, rows = f.result()
                    del pending[f]
                    done[c] = rows
                bar.update(max(0, min(_prefix(done)[0], n) - min(have, n)))
            for f in pending:
                f.cancel()
    finally:
        _JOB = None


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
