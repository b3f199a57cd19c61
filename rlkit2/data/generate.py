"""D4RL-style datasets generated on the Gymnasium MuJoCo v5 envs with rlkit2's own behaviour policies.

They have their own names, `<env>-v5-<kind>` (`hopper-v5-medium`), never D4RL's (`hopper-medium-v2` names
D4RL's own file only): the recipe is D4RL's, the simulator, the behaviour policies and the data are not.

D4RL's recipe (Fu et al., 2020; docs/datasets.md), with the online SAC agent of `rlkit2.agents.sac` as the trainer:

- random: a uniform random policy;
- expert: a policy trained to convergence - here the best evaluated snapshot of one SAC run of
  `train_steps` env steps (D4RL trained for 1M+; a scaled-down budget gives a weaker "expert", and the
  metadata says how it was made);
- medium: a snapshot of the *same* run, the earliest whose evaluation reached one third of the
  expert's return (the run "stopped" there);
- medium-replay: that run's replay buffer up to the medium snapshot (random warm-up included, as in D4RL);
- medium-expert: medium followed by expert.

random, medium and expert hold `transitions` rows collected with the behaviour policy (stochastic, as D4RL
sampled its SAC policies), in 1000-step episodes that end with `timeouts`; a fall ends with `terminals`;
the last episode is cut at `transitions` (marked as a timeout). Rows carry `next_observations`, and
`infos/qpos`, `infos/qvel` like D4RL's files.

Everything is resumable: SAC training resumes from its checkpoints (the control trainer's own), policy
snapshots are kept in the work dir (`policies/step_*.pt`: learner state + eval return; reusable with
`load_snapshot_agent`), collection is written in chunks, and each finished file is written atomically.
Reference returns measured on v5 (random: the random dataset's complete episodes; expert: the expert's
greedy return over `ref_episodes` episodes) go into every file's metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import rlkit2
from rlkit2 import checkpoint as ckpt
from rlkit2.core import ConfigError, DataError, EnvironmentLoop, FunctionActor
from rlkit2.data.d4rl import (
    D4RL_ENVS,
    D4RL_KINDS,
    GeneratedName,
    dataset_name_help,
    episode_returns,
    generated_name,
    parse_d4rl_name,
    parse_generated_name,
    read_d4rl,
    rlkit2_data_dir,
    write_d4rl,
)
from rlkit2.data.scores import (
    D4RL_REFERENCE,
    META_EXPERT_D4RL,
    META_EXPERT_V5,
    META_RANDOM_D4RL,
    META_RANDOM_V5,
    V5_REFERENCE,
    normalized_score,
)

MEDIUM_FRACTION = 1.0 / 3.0
BEHAVIOUR_SOURCES: tuple[str, ...] = ("auto", "shipped", "train")


@dataclasses.dataclass
class GenerationConfig:
    """How datasets for one environment family are made. Scaled-down runs are first-class:
    e.g. transitions=100_000, train_steps=100_000 fits a 2-core machine."""

    env: str  # "hopper" | "halfcheetah" | "walker2d"
    transitions: int = 1_000_000  # rows of random / medium / expert
    train_steps: int = 1_000_000  # SAC env steps for the behaviour-policy run
    seed: int = 0
    eval_every: int = 5_000  # policy snapshot + evaluation every this many env steps
    eval_episodes: int = 5
    ref_episodes: int = 10  # greedy episodes to measure the expert / medium return
    learning_starts: int = 5_000
    checkpoint_every: int = 10_000
    max_episode_steps: int = 1_000
    chunk_steps: int = 20_000  # collection is saved every ~this many rows (resume granularity)
    threads: int = 1
    hidden: tuple[int, ...] = (256, 256)  # SAC's MLP widths; (64, 64) is ~3.5x cheaper an update on a CPU
    data_dir: str = ""  # default: rlkit2's dataset cache (RLKIT2_DATA_DIR)
    progress: bool = True
    # behaviour policies: "auto" = the shipped ones (rlkit2/data/policies) when the env has any, else SAC
    # trained here; "shipped" = shipped only; "train" = train SAC here even when shipped ones exist
    behaviour: str = "auto"
    policies_dir: str = ""  # default: $RLKIT2_POLICIES_DIR or the package's rlkit2/data/policies
    work_name: str = ""  # the work dir's folder name under <root>/work (default: from env, seed, budget, widths)

    def __post_init__(self) -> None:
        if self.env not in D4RL_ENVS:
            raise ConfigError(f"env='{self.env}': expected one of {', '.join(D4RL_ENVS)}")
        if self.behaviour not in BEHAVIOUR_SOURCES:
            raise ConfigError(f"behaviour='{self.behaviour}': expected one of {', '.join(BEHAVIOUR_SOURCES)}")
        for name in ("transitions", "train_steps", "eval_every", "eval_episodes", "ref_episodes", "chunk_steps"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be positive")
        if self.eval_every > self.train_steps:
            raise ConfigError(f"eval_every={self.eval_every} exceeds train_steps={self.train_steps}: no snapshot")

    @property
    def gym_id(self) -> str:
        return D4RL_ENVS[self.env]

    @property
    def root(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else rlkit2_data_dir()

    @property
    def work_dir(self) -> Path:
        """Everything reusable for this (env, seed, training budget): SAC run, snapshots, collected chunks."""
        if self.work_name:
            return self.root / "work" / self.work_name
        width = "" if tuple(self.hidden) == (256, 256) else "-h" + "x".join(str(h) for h in self.hidden)
        return self.root / "work" / f"{self.env}-seed{self.seed}-train{self.train_steps}{width}"


def _log(cfg: GenerationConfig, msg: str) -> None:
    if cfg.progress:
        print(f"[rlkit2-data] {msg}", flush=True)


def _env_cfg(cfg: GenerationConfig) -> Any:
    from rlkit2.envs.gym_mujoco import GymEnvConfig

    return GymEnvConfig(id=cfg.gym_id, max_episode_steps=cfg.max_episode_steps)


def _atomic_json(path: Path, obj: Any) -> None:
    ckpt.atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


# --------------------------------------------------------------------------- behaviour-policy training


def _snapshot_path(cfg: GenerationConfig, step: int) -> Path:
    return cfg.work_dir / "policies" / f"step_{step:09d}.pt"


def train_behaviour_policies(cfg: GenerationConfig) -> list[dict[str, Any]]:
    """Run (or resume) SAC for `train_steps` env steps, snapshotting the learner at every evaluation.

    Returns [{step, eval_return, path}] sorted by step. Uses the control trainer (its loop, its
    checkpoints, its evaluation); a subclass only adds the snapshot at each evaluation.
    """
    done = cfg.work_dir / "training_done.json"
    if done.is_file():
        return json.loads(done.read_text())["snapshots"]
    import torch
    from omegaconf import OmegaConf

    from rlkit2.agents.sac import SACConfig
    from rlkit2.config import RunConfig, TrainerConfig
    from rlkit2.logging import JsonlLogger
    from rlkit2.run.control import control_loop

    torch.set_num_threads(cfg.threads)
    run_dir = cfg.work_dir / "sac"
    trainer_cfg = TrainerConfig(total_steps=cfg.train_steps, eval_every=cfg.eval_every,
                                eval_episodes=cfg.eval_episodes, log_every=min(1000, cfg.eval_every),
                                checkpoint_every=cfg.checkpoint_every, keep_checkpoints=1,
                                learning_starts=min(cfg.learning_starts, cfg.train_steps // 2),
                                threads=str(cfg.threads), progress=cfg.progress, plot=False)
    agent_cfg = SACConfig(replay_capacity=cfg.train_steps, hidden=list(cfg.hidden))
    run_cfg = OmegaConf.structured(RunConfig(agent=agent_cfg, env=_env_cfg(cfg), trainer=trainer_cfg, seed=cfg.seed,
                                             resume="auto"))

    _log(cfg, f"training SAC on {cfg.gym_id} for {cfg.train_steps} env steps (run dir {run_dir}; resumable)")
    logger = JsonlLogger(run_dir)
    t0 = time.perf_counter()
    try:
        loop = control_loop(run_cfg, run_dir, logger)
        agent = loop.phase.s.agent  # type: ignore[attr-defined]

        def snapshot(step: int, ev: dict[str, float]) -> None:  # the policy at every evaluation
            ckpt.save({"step": step, "eval_return": ev["eval/return"], "agent": "sac",
                       "agent_config": dataclasses.asdict(agent.config), "spec": dataclasses.asdict(agent.spec),
                       "env_id": cfg.gym_id, "learner": agent.learner.state_dict()}, _snapshot_path(cfg, step))

        loop.on_evaluate = snapshot
        loop.run()
    finally:
        logger.close()
    return _finish_training(cfg, {"seconds": time.perf_counter() - t0, "stopped_early": False})


def _finish_training(cfg: GenerationConfig, info: dict[str, Any]) -> list[dict[str, Any]]:
    snaps = []
    for step, path in ckpt.list_checkpoints(cfg.work_dir / "policies"):
        snaps.append({"step": step, "eval_return": float(ckpt.load(path)["eval_return"]), "path": str(path)})
    if not snaps:
        raise DataError(f"no policy snapshots in {cfg.work_dir / 'policies'} (no evaluation was reached yet)")
    _atomic_json(cfg.work_dir / "training_done.json",
                 {"snapshots": snaps, "trained_env_steps": snaps[-1]["step"], **info})
    return snaps


def stop_training(cfg: GenerationConfig) -> list[dict[str, Any]]:
    """Declare the behaviour-policy run finished with the snapshots it has so far.

    For a wall-clock budget: kill a training run (it is resumable, so nothing is lost), then stop it here;
    the expert is then the best snapshot so far and files record `trained_env_steps`. Call it only while
    no training process is running on this work dir.
    """
    done = cfg.work_dir / "training_done.json"
    if done.is_file():
        return json.loads(done.read_text())["snapshots"]
    _log(cfg, f"stopping the SAC run in {cfg.work_dir} early; using the snapshots it has")
    return _finish_training(cfg, {"stopped_early": True})


def extend_training(cfg: GenerationConfig, from_train_steps: int) -> Path:
    """Start this config's run from a finished shorter run of the same env/seed/width (`from_train_steps`).

    Copies the shorter run's policy snapshots, metrics, collected chunks and its last trainer checkpoint into
    this config's work dir, so training resumes at that step instead of from scratch. The replay of a run
    whose ring filled exactly (capacity = its train_steps) has its cursor wrapped to 0; in the larger ring the
    next transition belongs after the stored ones, so the cursor is moved there.
    """
    import shutil

    if from_train_steps >= cfg.train_steps:
        raise ConfigError(f"extend: from_train_steps={from_train_steps} must be below train_steps={cfg.train_steps}")
    src = dataclasses.replace(cfg, train_steps=from_train_steps).work_dir
    found = ckpt.latest_valid(src / "sac" / "checkpoints")
    if found is None or not (src / "policies").is_dir():
        raise DataError(f"extend: no finished run to start from in {src}")
    dst = cfg.work_dir
    if (dst / "sac" / "checkpoints").is_dir() and ckpt.list_checkpoints(dst / "sac" / "checkpoints"):
        raise DataError(f"extend: {dst} already has a run; resume it instead")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "policies", dst / "policies", dirs_exist_ok=True)
    if (src / "collect").is_dir():
        shutil.copytree(src / "collect", dst / "collect", dirs_exist_ok=True)
    (dst / "sac").mkdir(exist_ok=True)
    if (src / "sac" / "metrics.jsonl").is_file():
        shutil.copy(src / "sac" / "metrics.jsonl", dst / "sac" / "metrics.jsonl")
    path, state = found
    for local in state.get("ranks", [state]):
        rep = local["replay"]
        if int(rep["size"]) == from_train_steps and int(rep["cursor"]) == 0:
            rep["cursor"] = int(rep["size"])
    ckpt.save(state, dst / "sac" / "checkpoints" / path.name)
    _log(cfg, f"extending the {from_train_steps}-step run in {src} to {cfg.train_steps} steps in {dst}")
    return dst


def training_info(cfg: GenerationConfig) -> dict[str, Any]:
    done = cfg.work_dir / "training_done.json"
    return json.loads(done.read_text()) if done.is_file() else {}


def load_snapshot_agent(path: str | os.PathLike[str], seed: int = 0) -> Any:
    """A saved behaviour-policy snapshot -> `rlkit2.registry.Agent` (policy: greedy, explorer: stochastic)."""
    from rlkit2.registry import EnvSpec, build_agent, get_agent

    state = ckpt.load(path)
    entry = get_agent(state["agent"])
    agent = build_agent(state["agent"], entry.config_cls(**state["agent_config"]), EnvSpec(**state["spec"]), None, seed)
    agent.learner.load_state_dict(state["learner"])
    return agent


def _evaluate_snapshot(cfg: GenerationConfig, path: str, seed_offset: int) -> tuple[float, float]:
    from rlkit2.core import evaluate
    from rlkit2.registry import make_env

    agent = load_snapshot_agent(path, cfg.seed)
    env = make_env(_env_cfg(cfg), cfg.seed + seed_offset)
    ev = evaluate(env, agent.policy, cfg.ref_episodes, seed=cfg.seed + seed_offset)
    env.close()
    return ev["eval/return"], ev["eval/return_std"]


def select_policies(cfg: GenerationConfig) -> dict[str, Any]:
    """Pick expert (best evaluated snapshot) and medium (earliest snapshot reaching 1/3 of the expert),
    and measure both with `ref_episodes` fresh greedy episodes (so the choice's luck does not bias them)."""
    path = cfg.work_dir / "selection.json"
    if path.is_file():
        return json.loads(path.read_text())
    snaps = train_behaviour_policies(cfg)
    if not snaps:
        raise DataError(f"no policy snapshots in {cfg.work_dir / 'policies'}")
    best = max(snaps, key=lambda s: s["eval_return"])
    expert_ret, expert_std = _evaluate_snapshot(cfg, best["path"], 20_000)
    target = MEDIUM_FRACTION * expert_ret
    # strictly before the expert when there is any earlier snapshot, so medium and expert differ
    before = [s for s in snaps if s["step"] < best["step"]] or [best]
    medium = next((s for s in before if s["eval_return"] >= target), before[-1])
    medium_ret, medium_std = _evaluate_snapshot(cfg, medium["path"], 30_000)
    sel = {"expert": dict(best, return_mean=expert_ret, return_std=expert_std),
           "medium": dict(medium, return_mean=medium_ret, return_std=medium_std),
           "medium_target": target}
    _log(cfg, f"expert: step {best['step']} return {expert_ret:.1f}; medium: step {medium['step']} "
              f"return {medium_ret:.1f} (target {target:.1f})")
    _atomic_json(path, sel)
    return sel


# --------------------------------------------------------------------------- collection


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


def collect(cfg: GenerationConfig, kind: str, make_actor: Callable[[int], Any], n: int) -> dict[str, np.ndarray]:
    """Run `make_actor(seed)` for `n` rows in 1000-step episodes, resumable chunk by chunk.

    Episode k resets with seed `seed * 1_000_003 + k` and chunk c's actor is seeded from c, so a resumed
    collection continues exactly where the saved chunks stop.
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
    env = RecordingWrapper(make_env(_env_cfg(cfg), cfg.seed))
    bar = tqdm(total=n, initial=min(have, n), desc=f"{cfg.env} {kind}", disable=not cfg.progress,
               dynamic_ncols=True, mininterval=2.0)
    try:
        while have < n:
            # one actor per chunk, seeded by the chunk index: a resumed collection equals an uninterrupted one
            actor = make_actor(cfg.seed * 7_919 + len(chunks))
            if callable(getattr(actor, "start_at_row", None)):  # an actor whose policy depends on the row
                actor.start_at_row(have)
            loop = EnvironmentLoop(env, actor, max_episode_steps=cfg.max_episode_steps)
            chunk_rows, chunk_eps = 0, 0
            while chunk_rows < cfg.chunk_steps and have + chunk_rows < n:
                res = loop.run_episode(seed=cfg.seed * 1_000_003 + episode)
                episode += 1
                chunk_eps += 1
                chunk_rows += res.length
                bar.update(res.length)
            rows = env.pop()
            np.savez(cdir / f".chunk_{len(chunks):05d}.npz", episodes=chunk_eps, **rows)
            os.replace(cdir / f".chunk_{len(chunks):05d}.npz", cdir / f"chunk_{len(chunks):05d}.npz")
            chunks.append(cdir / f"chunk_{len(chunks):05d}.npz")
            parts.append(rows)
            have += chunk_rows
    finally:
        bar.close()
        env.close()
    rows = {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0] if k != "episodes"}
    if not (rows["terminals"][-1] or rows["timeouts"][-1]):
        rows["timeouts"][-1] = True  # the last episode is cut here: a time-limit-like end, not a fall
    return rows


def _random_actor_factory(cfg: GenerationConfig) -> Callable[[int], Any]:
    space: Any = gym.make(cfg.gym_id).action_space

    def make(seed: int) -> Any:
        rng = np.random.default_rng(seed)
        return FunctionActor(lambda obs: rng.uniform(space.low, space.high).astype(np.float32))

    return make


def _snapshot_actor_factory(path: str) -> Callable[[int], Any]:
    def make(seed: int) -> Any:
        import torch

        torch.manual_seed(seed)  # the explorer samples with torch's global RNG
        return load_snapshot_agent(path, seed).explorer

    return make


def _split(rows: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    infos: dict[str, np.ndarray] = {k: rows[k] for k in ("qpos", "qvel") if k in rows}
    return {k: v for k, v in rows.items() if k not in infos}, infos


def replay_rows(cfg: GenerationConfig, upto_step: int) -> dict[str, np.ndarray]:
    """The SAC run's replay buffer, oldest first, up to env step `upto_step` (medium-replay).

    The replay stores (s, a, r, s', terminal); an episode boundary that is not a terminal is a time-limit
    end, found where s' of one row is not s of the next (the env was reset), marked as a timeout.
    """
    found = ckpt.latest_valid(cfg.work_dir / "sac" / "checkpoints")
    if found is None:
        raise DataError(f"no SAC checkpoint in {cfg.work_dir / 'sac' / 'checkpoints'}: train first")
    state = found[1]
    # the control trainer keeps rank-local state (the replay) under "ranks" (one entry when not distributed)
    arrays = (state["ranks"][0] if "ranks" in state else state)["replay"]["arrays"]
    n = min(int(upto_step), len(arrays["observations"]))
    obs, nxt = arrays["observations"][:n], arrays["next_observations"][:n]
    term = arrays["terminals"][:n].astype(bool)
    cont = np.zeros(n, bool)
    cont[:-1] = np.all(nxt[:-1] == obs[1:], axis=1)
    return {"observations": obs, "actions": arrays["actions"][:n], "rewards": arrays["rewards"][:n],
            "next_observations": nxt, "terminals": term, "timeouts": ~cont & ~term}


# --------------------------------------------------------------------------- making files


def output_path(cfg: GenerationConfig, name: str) -> Path:
    return cfg.root / f"{name}.hdf5"


def _random_reference(rows: dict[str, np.ndarray]) -> float:
    """Mean return of the random dataset's complete episodes (the cut last one excluded)."""
    rets = episode_returns(rows["rewards"], rows["terminals"], rows["timeouts"])
    return float(rets[:-1].mean()) if len(rets) > 1 else float(rets.mean())


def _rows_for(cfg: GenerationConfig, kind: str, sel: dict[str, Any] | None) -> dict[str, np.ndarray]:
    if kind == "random":
        return collect(cfg, "random", _random_actor_factory(cfg), cfg.transitions)
    assert sel is not None
    if kind in ("medium", "expert"):
        tag = f"{kind}-step{int(sel[kind]['step']):09d}"  # new chunks if the selection ever changes
        return collect(cfg, tag, _snapshot_actor_factory(sel[kind]["path"]), cfg.transitions)
    if kind == "medium-replay":
        return replay_rows(cfg, sel["medium"]["step"])
    if kind == "medium-expert":
        med, exp = _rows_for(cfg, "medium", sel), _rows_for(cfg, "expert", sel)
        return {k: np.concatenate([med[k], exp[k]]) for k in med}
    raise ConfigError(f"unknown dataset kind '{kind}'; valid: {', '.join(D4RL_KINDS)}")


def parse_make_name(name: str) -> GeneratedName:
    """A name `make` accepts -> GeneratedName. A D4RL name is refused, pointing to its generated counterpart
    (rlkit2 cannot make D4RL's files); anything else is refused with examples of both kinds."""
    d4rl = parse_d4rl_name(name)
    if d4rl is not None:
        gen = generated_name(d4rl.env, d4rl.kind)
        raise ConfigError(f"'{name}' is D4RL's dataset name: it names D4RL's own file, which cannot be made here. "
                          f"The dataset generated here with D4RL's recipe (on Gymnasium's {d4rl.gym_id}) is "
                          f"'{gen}': `rlkit2-data make {gen}`, then train with env.id={gen}")
    parsed = parse_generated_name(name)
    if parsed is None:
        raise ConfigError(f"'{name}' is not a dataset name `make` can generate. {dataset_name_help()}")
    return parsed


def behaviour_source(cfg: GenerationConfig) -> str:
    """"shipped" when the env has shipped behaviour policies (and cfg.behaviour allows them), else "train"."""
    from rlkit2.data.shipped import policies_dir, shipped_roles

    if cfg.behaviour == "train":
        return "train"
    if shipped_roles(cfg.env, cfg.policies_dir or None):
        return "shipped"
    if cfg.behaviour == "shipped":
        raise DataError(f"behaviour=shipped, but no behaviour policies are shipped for {cfg.env} in "
                        f"{policies_dir(cfg.policies_dir or None) / cfg.env}")
    return "train"


def shipped_work(cfg: GenerationConfig) -> GenerationConfig:
    """The work dir (collected chunks) of datasets made from shipped policies: by env and seed only."""
    return dataclasses.replace(cfg, work_name=f"{cfg.env}-shipped-seed{cfg.seed}")


def shipped_selection(cfg: GenerationConfig, kind: str) -> dict[str, Any]:
    """The shipped policies dataset `kind` needs, loaded and verified (sha256, card, shapes).

    {"expert"/"medium": {step, return_mean, return_std, path, sha256, role, learning_starts, loaded},
     "snapshots": [...] (medium-replay: the snapshots taken before medium, in training order),
     "digest": sha256 over the files used}. The expert is loaded when shipped, for the v5 reference.
    """
    from rlkit2.data.shipped import load_shipped_policy, policies_dir, shipped_roles, snapshot_step

    pdir = policies_dir(cfg.policies_dir or None)
    roles = shipped_roles(cfg.env, pdir)
    needed = {"random": [], "medium": ["medium"], "expert": ["expert"], "medium-expert": ["medium", "expert"],
              "medium-replay": ["medium"]}[kind]
    missing = [r for r in needed if r not in roles]
    if missing:
        raise DataError(f"{generated_name(cfg.env, kind)} needs the shipped {' and '.join(missing)} policy of "
                        f"{cfg.env} ({pdir / cfg.env}/<role>.safetensors + .json); shipped: {', '.join(roles)}")

    def entry(role: str) -> dict[str, Any]:
        loaded = load_shipped_policy(cfg.env, role, policies_dir=pdir, seed=cfg.seed)
        card = loaded.card
        return {"role": role, "step": int(card["env_steps"]), "return_mean": float(card["return_mean"]),
                "return_std": float(card["return_std"]), "path": str(loaded.path), "sha256": card["sha256"],
                "learning_starts": card.get("learning_starts"), "training_seed": int(card["seed"]),
                "loaded": loaded}

    sel: dict[str, Any] = {r: entry(r) for r in ("expert", "medium") if r in roles and (r in needed or r == "expert")}
    used = [sel[r]["sha256"] for r in sel]
    if kind == "medium-replay":
        medium_step = sel["medium"]["step"]
        steps = {r: snapshot_step(r) for r in roles}
        snaps = [entry(r) for r, step in steps.items() if step is not None and step < medium_step]
        if not snaps:
            raise DataError(f"{generated_name(cfg.env, kind)} is rolled out from the snapshots a SAC run took before "
                            f"medium (env step {medium_step}); none are shipped for {cfg.env} in {pdir / cfg.env} "
                            "(snapshot-<env steps>.safetensors + .json)")
        sel["snapshots"] = snaps
        used += [e["sha256"] for e in snaps]
    sel["digest"] = hashlib.sha256(" ".join(used).encode()).hexdigest()
    return sel


def _shipped_rows_for(cfg: GenerationConfig, kind: str, sel: dict[str, Any]) -> dict[str, np.ndarray]:
    """Rows of `kind` collected with shipped policies (cfg: the shipped work dir)."""
    if kind in ("medium", "expert"):
        loaded = sel[kind]["loaded"]
        return collect(cfg, f"shipped-{kind}-{sel[kind]['sha256'][:16]}", loaded.make_explorer, cfg.transitions)
    if kind == "medium-expert":
        med, exp = _shipped_rows_for(cfg, "medium", sel), _shipped_rows_for(cfg, "expert", sel)
        return {k: np.concatenate([med[k], exp[k]]) for k in med}
    if kind == "medium-replay":
        return collect(cfg, f"shipped-medium-replay-{sel['digest'][:16]}-ls{_learning_starts(cfg, sel)}",
                       _replay_actor_factory(cfg, sel), sel["medium"]["step"])
    raise ConfigError(f"unknown dataset kind '{kind}'; valid: {', '.join(D4RL_KINDS)}")


def _learning_starts(cfg: GenerationConfig, sel: dict[str, Any]) -> int:
    """The SAC run's uniform-random warm-up: the medium card's, else cfg.learning_starts; within medium's steps."""
    ls = sel["medium"]["learning_starts"]
    return min(int(cfg.learning_starts if ls is None else ls), int(sel["medium"]["step"]))


def _replay_actor_factory(cfg: GenerationConfig, sel: dict[str, Any]) -> Callable[[int], Any]:
    """medium-replay from shipped snapshots: row t of the SAC run was collected by uniform random actions
    during the warm-up, then by the stochastic explorer of the latest snapshot taken at or before step t."""
    from rlkit2.data.shipped import ScheduledActor

    snaps = sel["snapshots"]
    steps = [int(e["step"]) for e in snaps]
    learning_starts = _learning_starts(cfg, sel)
    space: Any = gym.make(cfg.gym_id).action_space

    def make(seed: int) -> Any:
        rng = np.random.default_rng(seed)
        explorers = [e["loaded"].make_explorer(seed * 1_009 + i) for i, e in enumerate(snaps)]
        return ScheduledActor(explorers, steps, learning_starts,
                              lambda: rng.uniform(space.low, space.high).astype(np.float32))

    return make


def _existing_output(cfg: GenerationConfig, path: Path, settings: dict[str, Any], force: bool) -> bool:
    """True when `path` was already made with `settings`; DataError when made with others (unless force)."""
    if not path.is_file() or force:
        return False
    md = read_d4rl(path).metadata
    if all(md.get(k) == v for k, v in settings.items()):
        _log(cfg, f"{path} already made with these settings")
        return True
    raise DataError(f"{path} exists but was made with other settings "
                    f"({ {k: md.get(k) for k in settings} }); pass --force to overwrite or --out elsewhere")


def make_dataset(name: str, cfg: GenerationConfig, out: str | os.PathLike[str] | None = None,
                 force: bool = False) -> Path:
    """Make generated dataset `name` (e.g. hopper-v5-medium) and return its path.

    Behaviour policies: the shipped ones (`rlkit2.data.shipped`) when the env has any (cfg.behaviour "auto"
    or "shipped"); otherwise SAC is trained here (a printed line says so). Reuses everything already in the
    work dir (training, snapshots, collected chunks). An existing output made with the same settings is
    returned as is; one made with other settings is an error unless `force`.
    """
    parsed = parse_make_name(name)
    if parsed.env != cfg.env:
        raise ConfigError(f"dataset '{name}' is for {parsed.env}, but the generation config is for {cfg.env}")
    path = Path(out) if out else output_path(cfg, parsed.name)
    source = behaviour_source(cfg)
    shipped: dict[str, Any] | None = None
    if source == "shipped":
        shipped = shipped_selection(cfg, parsed.kind)
        work = shipped_work(cfg)
        settings: dict[str, Any] = {"transitions": cfg.transitions, "seed": cfg.seed, "behaviour_source": "shipped",
                                    "behaviour_policies_sha256": shipped["digest"]}
    else:
        work = cfg
        settings = {"transitions": cfg.transitions, "train_steps": cfg.train_steps, "seed": cfg.seed,
                    "sac_hidden": "x".join(str(h) for h in cfg.hidden), "behaviour_source": "trained"}
    if _existing_output(cfg, path, settings, force):
        return path
    if source == "train" and parsed.kind != "random" and not (cfg.work_dir / "training_done.json").is_file():
        from rlkit2.data.shipped import policies_dir

        why = "behaviour=train" if cfg.behaviour == "train" else \
            f"no shipped behaviour policies for {cfg.env} in {policies_dir(cfg.policies_dir or None) / cfg.env}"
        print(f"[rlkit2-data] {why}: training SAC here on {cfg.gym_id} for {cfg.train_steps} env steps "
              f"(resumable; work dir {cfg.work_dir})", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    if shipped is not None:
        sel: dict[str, Any] | None = {r: shipped[r] for r in ("medium", "expert") if r in shipped}
    else:
        # random needs no trained policy: it reuses the run's expert as reference when one was already
        # selected (or the measured table), otherwise its file carries the random reference only.
        need = parsed.kind != "random" or (cfg.work_dir / "selection.json").is_file()
        sel = select_policies(cfg) if need else None
    random_rows = collect(work, "random", _random_actor_factory(work), cfg.transitions)
    random_ref = _random_reference(random_rows)
    if parsed.kind == "random":
        rows = random_rows
    elif shipped is not None:
        rows = _shipped_rows_for(work, parsed.kind, shipped)
    else:
        rows = _rows_for(cfg, parsed.kind, sel)
    rows, infos = _split(rows)
    rets = episode_returns(rows["rewards"], rows["terminals"], rows["timeouts"])
    d4rl_lo, d4rl_hi = D4RL_REFERENCE[cfg.env]
    if sel is not None and "expert" in sel:
        expert_ref: float | None = float(sel["expert"]["return_mean"])
    else:
        expert_ref = V5_REFERENCE[cfg.env][1] if cfg.env in V5_REFERENCE else None
    expert_what = "the shipped expert policy's card (greedy, eval_episodes episodes)" if shipped is not None else \
        "this run's expert snapshot over ref_episodes episodes"
    metadata: dict[str, Any] = {
        "dataset_name": parsed.name, "generated_by": "rlkit2-data make", "d4rl_counterpart": parsed.d4rl_counterpart,
        "generated_note": f"generated here with D4RL's recipe for {parsed.d4rl_counterpart} on Gymnasium's "
                          f"{cfg.gym_id}; not D4RL's file",
        "kind": parsed.kind, "env_id": cfg.gym_id, "env_version": "v5",
        "rlkit2_version": rlkit2.__version__, "gymnasium_version": gym.__version__,
        "mujoco_version": __import__("mujoco").__version__,
        **settings, "behaviour_agent": "sac" if parsed.kind != "random" else "uniform_random",
        "max_episode_steps": cfg.max_episode_steps, "episodes": int(len(rets)),
        "dataset_mean_episode_return": float(rets.mean()),
        META_RANDOM_V5: random_ref, META_RANDOM_D4RL: d4rl_lo, META_EXPERT_D4RL: d4rl_hi,
        "reference_returns": "d4rl",
        "reference_note": "eval/normalized_score uses D4RL's reference returns (ref_*_return_d4rl: D4RL's random "
                          "and expert policies on the mujoco-py -v2 envs), so it is comparable in spirit with "
                          "D4RL tables but not the same measurement: this data and its evaluation run on the v5 envs",
        "v5_reference_note": "v5 refs (eval/normalized_score_v5): random = mean return of complete episodes of "
                             f"the uniform-random dataset; expert = greedy return of {expert_what}",
    }
    if expert_ref is not None:
        metadata[META_EXPERT_V5] = expert_ref
    if shipped is not None:
        metadata.update(_shipped_metadata(work, parsed.kind, shipped))
    elif sel is not None:
        tinfo = training_info(cfg)
        metadata.update({"medium_step": int(sel["medium"]["step"]), "expert_step": int(sel["expert"]["step"]),
                         "trained_env_steps": int(tinfo.get("trained_env_steps", cfg.train_steps)),
                         "training_stopped_early": bool(tinfo.get("stopped_early", False))})
    policy = None if sel is None else {"medium": sel.get("medium"), "expert": sel.get("expert"),
                                       "medium-replay": sel.get("medium")}.get(parsed.kind)
    if policy is not None:
        metadata.update({"policy_return": float(policy["return_mean"]),
                         "policy_return_std": float(policy["return_std"]), "policy_step": int(policy["step"])})
        if shipped is None:
            metadata["policy_checkpoint"] = str(policy["path"])
    elif parsed.kind == "medium-expert":
        assert sel is not None
        metadata.update({"policy_return_medium": float(sel["medium"]["return_mean"]),
                         "policy_return_expert": float(sel["expert"]["return_mean"])})
    else:
        metadata["policy_return"] = random_ref
    scored = metadata.get("policy_return", float(rets.mean()))
    metadata["normalized_policy_score_d4rl"] = normalized_score(scored, d4rl_lo, d4rl_hi)
    if expert_ref is not None:
        metadata["normalized_policy_score_v5"] = normalized_score(scored, random_ref, expert_ref)
    metadata["generation_seconds"] = time.perf_counter() - t0
    write_d4rl(path, rows, infos=infos, metadata=metadata)
    _log(cfg, f"wrote {path}: {len(rows['rewards'])} rows, {len(rets)} episodes, "
              f"mean episode return {rets.mean():.1f}")
    return path


def _shipped_metadata(cfg: GenerationConfig, kind: str, shipped: dict[str, Any]) -> dict[str, Any]:
    """What a file made from shipped policies records about them."""
    from rlkit2.data.shipped import policies_dir

    md: dict[str, Any] = {"behaviour_policies_dir": str(policies_dir(cfg.policies_dir or None))}
    for role in ("medium", "expert"):
        if role in shipped:
            e = shipped[role]
            md.update({f"{role}_step": e["step"], f"{role}_policy_file": f"{cfg.env}/{role}.safetensors",
                       f"{role}_policy_sha256": e["sha256"], f"{role}_policy_training_seed": e["training_seed"]})
    if kind == "medium-replay":
        snaps = shipped["snapshots"]
        md.update({"replay_snapshot_steps": np.array([e["step"] for e in snaps], np.int64),
                   "replay_snapshot_sha256": [e["sha256"] for e in snaps],
                   "replay_learning_starts": _learning_starts(cfg, shipped),
                   "replay_note": "rollouts of the shipped SAC snapshots in training order with SAC's stochastic "
                                  "explorer, row t by the latest snapshot taken at or before env step t (uniform "
                                  "random during the warm-up), up to the medium policy's env step: the run's "
                                  "replay buffer as closely as a list of snapshots allows, not the buffer itself"})
    return md


def make_all(cfg: GenerationConfig, kinds: tuple[str, ...] = D4RL_KINDS, force: bool = False) -> dict[str, Path]:
    """Make every kind (`<env>-v5-all`); random last, so its file also carries the run's expert reference."""
    order = [k for k in kinds if k != "random"] + [k for k in kinds if k == "random"]
    return {k: make_dataset(generated_name(cfg.env, k), cfg, force=force) for k in order}
