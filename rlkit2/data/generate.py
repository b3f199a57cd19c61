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

This module makes the files (`make_dataset`, `make_all`): it takes the behaviour policies from
`rlkit2.data.behaviour` (SAC trained here, its snapshots and their selection; or the shipped ones), the rows
from `rlkit2.data.collect`, and writes each file atomically with its metadata; `GenerationConfig`
(`rlkit2.data.genconfig`) says how. Everything is resumable: SAC training resumes from its checkpoints (the
control trainer's own), policy snapshots are kept in the work dir (`policies/step_*.pt`: learner state + eval
return; reusable with `rlkit2.data.behaviour.load_snapshot_agent`), and collection is written in chunks.
Reference returns measured on v5 (random: the complete episodes in the first 100k random rows; expert: the expert's
greedy return over `ref_episodes` episodes) go into every file's metadata.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import rlkit2
from rlkit2.core import ConfigError, DataError
from rlkit2.data.behaviour import (
    behaviour_source,
    replay_learning_starts,
    replay_rows,
    select_policies,
    shipped_selection,
    shipped_work,
    training_info,
)
from rlkit2.data.collect import collect, random_actor_factory, replay_actor_factory, snapshot_actor_factory, split_infos
from rlkit2.data.d4rl import episode_returns, read_d4rl, write_d4rl
from rlkit2.data.genconfig import GenerationConfig, progress_log
from rlkit2.data.names import (
    D4RL_KINDS,
    GeneratedName,
    dataset_name_help,
    generated_name,
    parse_d4rl_name,
    parse_generated_name,
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

# shipped medium/expert policies collect this many episodes side by side (one batched forward pass a step)
LANES = 16
RANDOM_REFERENCE_ROWS = 100_000  # the v5 random reference: complete episodes in this prefix of the random rows


def output_path(cfg: GenerationConfig, name: str) -> Path:
    return cfg.root / f"{name}.hdf5"


def _random_reference(rows: dict[str, np.ndarray]) -> float:
    """Mean return of the complete episodes (the cut last one excluded) in the first `RANDOM_REFERENCE_ROWS` rows
    of the uniform-random collection (thousands of episodes: the mean is settled long before 1M rows)."""
    rets = episode_returns(rows["rewards"], rows["terminals"], rows["timeouts"])
    return float(rets[:-1].mean()) if len(rets) > 1 else float(rets.mean())


def _rows_for(cfg: GenerationConfig, kind: str, sel: dict[str, Any] | None) -> dict[str, np.ndarray]:
    if kind == "random":
        return collect(cfg, "random", random_actor_factory(cfg), cfg.transitions)
    assert sel is not None
    if kind in ("medium", "expert"):
        tag = f"{kind}-step{int(sel[kind]['step']):09d}"  # new chunks if the selection ever changes
        return collect(cfg, tag, snapshot_actor_factory(sel[kind]["path"]), cfg.transitions)
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


def _shipped_rows_for(cfg: GenerationConfig, kind: str, sel: dict[str, Any]) -> dict[str, np.ndarray]:
    """Rows of `kind` collected with shipped policies (cfg: the shipped work dir)."""
    if kind in ("medium", "expert"):
        loaded = sel[kind]["loaded"]
        return collect(cfg, f"shipped-{kind}-{sel[kind]['sha256'][:16]}-x{LANES}", loaded.make_explorer,
                       cfg.transitions, lanes=LANES)
    if kind == "medium-expert":
        med, exp = _shipped_rows_for(cfg, "medium", sel), _shipped_rows_for(cfg, "expert", sel)
        return {k: np.concatenate([med[k], exp[k]]) for k in med}
    if kind == "medium-replay":
        return collect(cfg, f"shipped-medium-replay-{sel['digest'][:16]}-ls{replay_learning_starts(cfg, sel)}",
                       replay_actor_factory(cfg, sel), sel["medium"]["step"])
    raise ConfigError(f"unknown dataset kind '{kind}'; valid: {', '.join(D4RL_KINDS)}")


def _existing_output(cfg: GenerationConfig, path: Path, settings: dict[str, Any], force: bool) -> bool:
    """True when `path` was already made with `settings`; DataError when made with others (unless force)."""
    if not path.is_file() or force:
        return False
    md = read_d4rl(path).metadata
    if all(md.get(k) == v for k, v in settings.items()):
        progress_log(cfg, f"{path} already made with these settings")
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
                                    "behaviour_policies_sha256": shipped["digest"],
                                    "chunk_episodes": cfg.chunk_episodes}
    else:
        work = cfg
        settings = {"transitions": cfg.transitions, "train_steps": cfg.train_steps, "seed": cfg.seed,
                    "sac_hidden": "x".join(str(h) for h in cfg.hidden), "behaviour_source": "trained",
                    "chunk_episodes": cfg.chunk_episodes}
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
    # every kind's v5 random reference comes from the same prefix of the random collection (chunks are prefixes),
    # so making medium does not collect the 1M random rows first
    random_ref = _random_reference(collect(work, "random", random_actor_factory(work),
                                           min(cfg.transitions, RANDOM_REFERENCE_ROWS)))
    if parsed.kind == "random":
        rows = collect(work, "random", random_actor_factory(work), cfg.transitions)
    elif shipped is not None:
        rows = _shipped_rows_for(work, parsed.kind, shipped)
    else:
        rows = _rows_for(cfg, parsed.kind, sel)
    rows, infos = split_infos(rows)
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
        "v5_reference_note": "v5 refs (eval/normalized_score_v5): random = mean return of the complete episodes "
                             f"in the first {RANDOM_REFERENCE_ROWS} rows of the uniform-random collection; "
                             f"expert = greedy return of {expert_what}",
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
    progress_log(cfg, f"wrote {path}: {len(rows['rewards'])} rows, {len(rets)} episodes, "
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
                   "replay_learning_starts": replay_learning_starts(cfg, shipped),
                   "replay_note": "rollouts of the shipped SAC snapshots in training order with SAC's stochastic "
                                  "explorer, row t by the latest snapshot taken at or before env step t (uniform "
                                  "random during the warm-up), up to the medium policy's env step: the run's "
                                  "replay buffer as closely as a list of snapshots allows, not the buffer itself"})
    return md


def make_all(cfg: GenerationConfig, kinds: tuple[str, ...] = D4RL_KINDS, force: bool = False) -> dict[str, Path]:
    """Make every kind (`<env>-v5-all`); random last, so its file also carries the run's expert reference."""
    order = [k for k in kinds if k != "random"] + [k for k in kinds if k == "random"]
    return {k: make_dataset(generated_name(cfg.env, k), cfg, force=force) for k in order}
