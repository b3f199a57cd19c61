"""The behaviour policies of generated datasets: SAC trained here (or the shipped ones), snapshots, selection.

Trained here (D4RL's recipe, with the online SAC agent of `rlkit2.agents.sac`): one SAC run of `train_steps`
env steps, resumable from the control trainer's own checkpoints, with a policy snapshot at every evaluation
(`policies/step_*.pt` in the work dir: learner state + eval return; reusable with `load_snapshot_agent`).
`select_policies` then picks the expert (the best evaluated snapshot) and medium (the earliest snapshot whose
evaluation reached one third of the expert's return) and measures both greedily over `ref_episodes`
episodes; `replay_rows` reads the run's replay buffer (medium-replay).

Shipped (`rlkit2.data.shipped`): `behaviour_source` says whether the env has any, `shipped_selection` loads
and verifies the ones a dataset kind needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from rlkit2 import checkpoint as ckpt
from rlkit2.core import ConfigError, DataError
from rlkit2.data.genconfig import GenerationConfig, atomic_json, env_config, progress_log
from rlkit2.data.names import generated_name

MEDIUM_FRACTION = 1.0 / 3.0


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
    from rlkit2.registry import get_runner

    torch.set_num_threads(cfg.threads)
    run_dir = cfg.work_dir / "sac"
    trainer_cfg = TrainerConfig(total_steps=cfg.train_steps, eval_every=cfg.eval_every,
                                eval_episodes=cfg.eval_episodes, log_every=min(1000, cfg.eval_every),
                                checkpoint_every=cfg.checkpoint_every, keep_checkpoints=1,
                                learning_starts=min(cfg.learning_starts, cfg.train_steps // 2),
                                threads=str(cfg.threads), progress=cfg.progress, plot=False)
    agent_cfg = SACConfig(replay_capacity=cfg.train_steps, hidden=list(cfg.hidden))
    run_cfg = OmegaConf.structured(RunConfig(agent=agent_cfg, env=env_config(cfg), trainer=trainer_cfg, seed=cfg.seed,
                                             resume="auto"))

    _refuse_unresumable(run_dir)
    progress_log(cfg, f"training SAC on {cfg.gym_id} for {cfg.train_steps} env steps (run dir {run_dir}; resumable)")
    logger = JsonlLogger(run_dir)
    t0 = time.perf_counter()
    try:
        def snapshot(step: int, ev: dict[str, float], agent: Any) -> None:  # the policy at every evaluation
            ckpt.save({"step": step, "eval_return": ev["eval/return"], "agent": "sac",
                       "agent_config": dataclasses.asdict(agent.config), "spec": dataclasses.asdict(agent.spec),
                       "env_id": cfg.gym_id, "learner": agent.learner.state_dict()}, _snapshot_path(cfg, step))

        get_runner("control")(run_cfg, run_dir, logger, on_evaluate=snapshot)
    finally:
        logger.close()
    return _finish_training(cfg, {"seconds": time.perf_counter() - t0, "stopped_early": False})


def _refuse_unresumable(run_dir: Path) -> None:
    """A run with checkpoints none of which loads stops here instead of starting afresh over its snapshots and
    metrics (hours of training): the user converts, rehashes or removes them first."""
    found = ckpt.list_checkpoints(run_dir / "checkpoints")
    if not found:
        return
    reasons: list[str] = []
    if ckpt.latest_valid(run_dir / "checkpoints", say=reasons.append) is None:
        raise DataError(f"the behaviour-policy run in {run_dir} has {len(found)} checkpoint(s) and none loads, so it "
                        f"cannot resume; starting afresh would overwrite its snapshots. {' '.join(reasons)} "
                        f"Fix them (python -m rlkit2.checkpoint convert|rehash {run_dir / 'checkpoints'}) or remove "
                        f"{run_dir.parent} to train from scratch.")


def _finish_training(cfg: GenerationConfig, info: dict[str, Any]) -> list[dict[str, Any]]:
    snaps = []
    for step, path in ckpt.list_checkpoints(cfg.work_dir / "policies"):
        snaps.append({"step": step, "eval_return": float(ckpt.load(path)["eval_return"]), "path": str(path)})
    if not snaps:
        raise DataError(f"no policy snapshots in {cfg.work_dir / 'policies'} (no evaluation was reached yet)")
    atomic_json(cfg.work_dir / "training_done.json",
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
    progress_log(cfg, f"stopping the SAC run in {cfg.work_dir} early; using the snapshots it has")
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
    progress_log(cfg, f"extending the {from_train_steps}-step run in {src} to {cfg.train_steps} steps in {dst}")
    return dst


def training_info(cfg: GenerationConfig) -> dict[str, Any]:
    done = cfg.work_dir / "training_done.json"
    return json.loads(done.read_text()) if done.is_file() else {}


def load_snapshot_agent(path: str | os.PathLike[str], seed: int = 0) -> Any:
    """A saved behaviour-policy snapshot -> `rlkit2.registry.Agent` (policy: greedy, explorer: stochastic)."""
    from rlkit2.registry import EnvSpec, build_agent

    state = ckpt.load(path)
    agent = build_agent(state["agent"], state["agent_config"], EnvSpec(**state["spec"]), None, seed)  # converts it
    agent.learner.load_state_dict(state["learner"])
    return agent


def _evaluate_snapshot(cfg: GenerationConfig, path: str, seed_offset: int) -> tuple[float, float]:
    from rlkit2.core import evaluate
    from rlkit2.registry import make_env

    agent = load_snapshot_agent(path, cfg.seed)
    env = make_env(env_config(cfg), cfg.seed + seed_offset)
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
    progress_log(cfg, f"expert: step {best['step']} return {expert_ret:.1f}; medium: step {medium['step']} "
              f"return {medium_ret:.1f} (target {target:.1f})")
    atomic_json(path, sel)
    return sel


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


# --------------------------------------------------------------------------- shipped behaviour policies


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


def replay_learning_starts(cfg: GenerationConfig, sel: dict[str, Any]) -> int:
    """The SAC run's uniform-random warm-up: the medium card's, else cfg.learning_starts; within medium's steps."""
    ls = sel["medium"]["learning_starts"]
    return min(int(cfg.learning_starts if ls is None else ls), int(sel["medium"]["step"]))

