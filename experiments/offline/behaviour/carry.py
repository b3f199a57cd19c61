"""Carry an in-flight behaviour-policy SAC run from one machine (or sitting) to the next through git.

Training the behaviour policies takes ~5 core-hours per environment here, longer than one sitting, and a
sitting's disk does not survive it. `pack` writes what the next sitting needs into a small committed folder;
`unpack` puts it back into the work dir that `rlkit2.data.behaviour.train_behaviour_policies` resumes from.

What is kept, and what is not (so a carried run is a continuation, not a bit-exact resume):

- the trainer checkpoint whole (learner: actor, critics, targets, temperature, optimiser moments; RNG states;
  step and episode counters), except the replay;
- the replay's newest `--replay-rows` transitions (default 100k), observations stored as float16;
  SAC continues with them and refills the ring from there;
- the policy snapshots' actor weights (every snapshot up to 150k env steps, every 50k after; evaluated return
  beside each): unpacked snapshots carry freshly initialised critics, which nothing reads (snapshots only act);
- the run's metrics.jsonl.

    python experiments/offline/behaviour/carry.py unpack hopper   # at the start of a sitting
    nohup python experiments/offline/behaviour/carry.py train hopper > hopper.log &   # resumable, 1 thread
    python experiments/offline/behaviour/carry.py pack hopper     # at the end (after stopping the training)
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from rlkit2 import checkpoint as ckpt
from rlkit2.data.genconfig import GenerationConfig

HERE = Path(__file__).resolve().parent
KEEP_ALL_UNTIL, KEEP_EVERY = 150_000, 50_000


def gen_config(env: str, data_dir: str) -> GenerationConfig:
    """The behaviour-policy run these tools carry: SAC 256-256, 1M env steps, seed 0, one thread."""
    return GenerationConfig(env=env, train_steps=1_000_000, data_dir=data_dir, progress=False)


def pack_dir(env: str) -> Path:
    return HERE / "carried" / f"{env}-seed0"


def _kept_snapshot(step: int) -> bool:
    return step <= KEEP_ALL_UNTIL or step % KEEP_EVERY == 0


def pack(env: str, data_dir: str, replay_rows: int) -> Path:
    cfg = gen_config(env, data_dir)
    found = ckpt.latest_valid(cfg.work_dir / "sac" / "checkpoints", trust=True)
    if found is None:
        raise SystemExit(f"no checkpoint in {cfg.work_dir / 'sac' / 'checkpoints'}")
    path, state = found
    out = pack_dir(env)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    local = state["ranks"][0]
    rep = local["replay"]
    size = int(rep["size"])
    keep = min(size, replay_rows)
    arrays = {k: np.asarray(v[size - keep: size]) for k, v in rep["arrays"].items()}
    low = {k: v.astype(np.float16) if k.endswith("observations") else v for k, v in arrays.items()}
    np.savez_compressed(tmp / "replay.npz", **low)
    local["replay"] = {"size": keep, "cursor": keep, "generator": rep["generator"], "arrays": {}}
    ckpt.save(state, tmp / "trainer.pt")
    snaps, kept = [], {}
    for step, snap in ckpt.list_checkpoints(cfg.work_dir / "policies"):
        s = ckpt.load(snap, trust=True)
        snaps.append({"step": step, "eval_return": float(s["eval_return"])})
        if _kept_snapshot(step):
            kept[f"step_{step:09d}"] = {"step": step, "eval_return": s["eval_return"], "agent": s["agent"],
                                       "agent_config": s["agent_config"], "spec": s["spec"], "env_id": s["env_id"],
                                       "actor": s["learner"]["modules"]["actor"]}
    ckpt.save({"snapshots": kept}, tmp / "snapshots.pt")  # one file: the repository keeps few, small files
    metrics = cfg.work_dir / "sac" / "metrics.jsonl"
    if metrics.is_file():
        with open(metrics, "rb") as f, gzip.open(tmp / "metrics.jsonl.gz", "wb") as g:
            shutil.copyfileobj(f, g)
    info = {"env": env, "step": int(state["step"]), "from_checkpoint": path.name, "replay_rows_kept": keep,
            "replay_rows_total": size, "evaluations": snaps}
    (tmp / "carried.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    mb = sum(f.stat().st_size for f in out.rglob("*")) / 1e6
    print(f"packed {env} at step {info['step']} into {out} ({mb:.1f} MB)")
    return out


def unpack(env: str, data_dir: str) -> Path:
    from rlkit2.agents.sac import SACConfig
    from rlkit2.core import EnvSpec
    from rlkit2.registry import build_agent

    cfg = gen_config(env, data_dir)
    src = pack_dir(env)
    if ckpt.list_checkpoints(cfg.work_dir / "sac" / "checkpoints"):
        raise SystemExit(f"{cfg.work_dir} already has a run: resume it instead")
    state = ckpt.load(src / "trainer.pt")
    with np.load(src / "replay.npz") as z:
        arrays = {k: z[k].astype(np.float32) for k in z.files}
    state["ranks"][0]["replay"]["arrays"] = arrays
    ckpt.save(state, ckpt.checkpoint_path(cfg.work_dir / "sac" / "checkpoints", int(state["step"])))
    for name, s in ckpt.load(src / "snapshots.pt")["snapshots"].items():
        agent = build_agent("sac", SACConfig(**s["agent_config"]), EnvSpec(**s["spec"]), None, 0)
        agent.learner.modules["actor"].load_state_dict(s["actor"])  # type: ignore[attr-defined]
        ckpt.save({"step": s["step"], "eval_return": s["eval_return"], "agent": s["agent"],
                   "agent_config": s["agent_config"], "spec": s["spec"], "env_id": s["env_id"],
                   "learner": agent.learner.state_dict()}, cfg.work_dir / "policies" / f"{name}.pt")
    if (src / "metrics.jsonl.gz").is_file():
        with gzip.open(src / "metrics.jsonl.gz", "rb") as g, open(cfg.work_dir / "sac" / "metrics.jsonl", "wb") as f:
            shutil.copyfileobj(g, f)
    print(f"unpacked {env} at step {state['step']} into {cfg.work_dir}")
    return cfg.work_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["pack", "unpack", "train"])
    ap.add_argument("envs", nargs="+", choices=["hopper", "walker2d", "halfcheetah"])
    ap.add_argument("--data-dir", default="/work/bg/data", help="the generation cache the run lives in")
    ap.add_argument("--replay-rows", type=int, default=100_000)
    args = ap.parse_args(argv)
    for env in args.envs:
        if args.command == "pack":
            pack(env, args.data_dir, args.replay_rows)
        elif args.command == "unpack":
            unpack(env, args.data_dir)
        else:
            train(env, args.data_dir)
    return 0


def train(env: str, data_dir: str) -> None:
    """Run (resume) the behaviour-policy SAC run on one torch thread (background jobs share 2 cores)."""
    import torch

    from rlkit2.data.behaviour import train_behaviour_policies

    torch.set_num_threads(1)
    train_behaviour_policies(gen_config(env, data_dir))


if __name__ == "__main__":
    sys.exit(main())
