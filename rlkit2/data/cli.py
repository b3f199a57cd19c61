"""`rlkit2-data`: make D4RL-style datasets here, inspect dataset files, show reference returns.

Datasets generated here have their own names, `<env>-v5-<kind>` (env: halfcheetah, hopper, walker2d; kind:
random, medium, medium-replay, medium-expert, expert), because they are not D4RL's files: D4RL's recipe on
Gymnasium's v5 envs with rlkit2's own behaviour policies. D4RL names (`hopper-medium-v2`) name D4RL's own
files only; `make` refuses them.

Behaviour policies: `make` rolls out the SAC policies shipped inside the package
(rlkit2/data/policies/<env>/{medium,expert,snapshot-<step>}.safetensors + .json cards) when the env has any -
minutes, deterministic from --seed - and trains SAC here (hours at full size) only when none are shipped.

    rlkit2-data make halfcheetah-v5-medium --transitions 1000000
    rlkit2-data make hopper-v5-all --transitions 100000 --train-steps 100000   # all five kinds, scaled down
    rlkit2-data info hopper-v5-medium          # or a D4RL name, a path, or minari:<id>
    rlkit2-data info demos.hdf5                # robomimic: demos, lengths, obs keys, masks, env_args
    rlkit2-data refs
    rlkit2-data policies                       # the shipped behaviour policies and their cards
    rlkit2-data export-policy WORK/policies/step_000100000.pt --env hopper --role medium --seed 0
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from rlkit2.core import RLKitError


def expand_names(names: list[str]) -> list[str]:
    """`<env>-v5-all` -> the five generated names of that env; other names unchanged (checked by make_dataset)."""
    from rlkit2.data.names import D4RL_KINDS, generated_name

    out: list[str] = []
    for name in names:
        if name.endswith("-v5-all"):
            out += [generated_name(name[: -len("-v5-all")], k) for k in D4RL_KINDS]
        else:
            out.append(name)
    return out


def _make(args: argparse.Namespace) -> int:
    import torch

    from rlkit2.data.behaviour import extend_training, stop_training
    from rlkit2.data.genconfig import GenerationConfig
    from rlkit2.data.generate import make_dataset, parse_make_name

    torch.set_num_threads(args.threads)
    for name in args.names:
        if "-all-v" in name:
            env = name.split("-all-v")[0]
            print(f"rlkit2-data: '{name}' uses D4RL's naming, which names D4RL's own files; all five datasets "
                  f"generated here are '{env}-v5-all'", file=sys.stderr)
            return 2
    names = expand_names(args.names)
    if args.out and len(names) != 1:
        print("rlkit2-data: --out needs exactly one dataset name", file=sys.stderr)
        return 2
    parsed = [parse_make_name(name) for name in names]  # all names checked before any work starts
    for name, gen in zip(names, parsed, strict=True):
        cfg = GenerationConfig(env=gen.env, transitions=args.transitions, train_steps=args.train_steps,
                               seed=args.seed, eval_every=min(args.eval_every, args.train_steps),
                               learning_starts=args.learning_starts, threads=args.threads, workers=args.workers,
                               hidden=tuple(int(h) for h in args.hidden.split("x")),
                               data_dir=args.data_dir, progress=not args.quiet, behaviour=args.behaviour,
                               policies_dir=args.policies_dir)
        if args.extend_from and not (cfg.work_dir / "sac" / "checkpoints").is_dir():
            extend_training(cfg, args.extend_from)
        if args.stop_training:
            stop_training(cfg)
        path = make_dataset(name, cfg, out=args.out or None, force=args.force)
        print(path)
    return 0


def _describe(data: Any, returns: np.ndarray, env_cfg: dict[str, str]) -> None:
    from rlkit2.data.scores import reference_returns

    print(f"source: {data.source}\nenv: {data.env_id}  dataset name: {data.dataset_name}  "
          f"D4RL's own file: {'yes (' + data.d4rl_name + ')' if data.d4rl_name else 'no'}")
    print(f"transitions: {len(data)}  episodes: {len(returns)}")
    if len(returns):
        print(f"episode return: mean {returns.mean():.1f}  std {returns.std():.1f}  "
              f"min {returns.min():.1f}  max {returns.max():.1f}")
    for ref in ("d4rl", "v5"):
        refs = reference_returns(env_cfg, data.metadata, ref)
        if refs is not None and len(returns):
            score = 100 * (returns.mean() - refs[0]) / (refs[1] - refs[0])
            print(f"normalised mean episode return ({ref} refs random={refs[0]:.1f}, "
                  f"expert={refs[1]:.1f}): {score:.1f}")
    for k, v in sorted(data.metadata.items()):
        print(f"  metadata/{k}: {v}")


def _info(args: argparse.Namespace) -> int:
    """D4RL rows (a file or a dataset name), robomimic demonstrations, or a Minari dataset (`minari:<id>`, or
    its directory): the format is told by the file's keys (rlkit2.data.describe)."""
    import os

    from rlkit2.data import load_offline_dataset
    from rlkit2.data.describe import describe_robomimic, detect_format, minari_id_for_path

    spec = args.dataset
    fmt = detect_format(spec)
    if fmt == "robomimic":
        print(describe_robomimic(spec))
        return 0
    saved = os.environ.get("MINARI_DATASETS_PATH")
    if fmt == "minari":  # a dataset directory: read it as minari:<id> from the root it is stored under
        dataset_id, root = minari_id_for_path(spec)
        os.environ["MINARI_DATASETS_PATH"] = str(root)
        spec = f"minari:{dataset_id}"
    try:
        data = load_offline_dataset({"id": "", "dataset": spec})
    finally:
        if fmt == "minari":
            os.environ.pop("MINARI_DATASETS_PATH", None)
            if saved is not None:
                os.environ["MINARI_DATASETS_PATH"] = saved
    if spec.startswith("minari:"):
        print("format: Minari (episodes read through the minari package into D4RL rows)")
    else:
        print("format: D4RL (observations, actions, rewards, terminals, timeouts)")
    _describe(data, data.episode_returns, {"id": data.env_id, "dataset": spec})
    return 0


def _policies(args: argparse.Namespace) -> int:
    from rlkit2.data.names import D4RL_ENVS
    from rlkit2.data.shipped import load_shipped_policy, policies_dir, shipped_roles

    root = policies_dir(args.policies_dir or None)
    print(f"shipped behaviour policies in {root}")
    for env in args.envs or list(D4RL_ENVS):
        roles = shipped_roles(env, root)
        if not roles:
            print(f"  {env:12s} none (rlkit2-data make trains SAC here for {env})")
        for role in roles:
            card = load_shipped_policy(env, role, policies_dir=root).card  # verifies sha256 and shapes
            print(f"  {env:12s} {role:22s} env steps {card['env_steps']:>9d}  return {card['return_mean']:9.1f} "
                  f"± {card['return_std']:7.1f} ({card['eval_episodes']} greedy episodes)  hidden "
                  f"{'x'.join(str(h) for h in card['hidden'])}  seed {card['seed']}")
    return 0


def _export_policy(args: argparse.Namespace) -> int:
    from rlkit2.data.shipped import policies_dir
    from rlkit2.data.shipped_export import export_policy

    returns = (args.returns[0], args.returns[1]) if args.returns else None
    path = export_policy(args.snapshot, args.env, args.role, args.out or policies_dir(), seed=args.seed,
                         returns=returns, env_steps=args.env_steps, learning_starts=args.learning_starts,
                         eval_episodes=args.eval_episodes)
    print(path)
    return 0


def _refs(_: argparse.Namespace) -> int:
    from rlkit2.data.scores import D4RL_REFERENCE, REFERENCE_SETS, V5_REFERENCE, V5_REFERENCE_NOTES

    for name, desc in REFERENCE_SETS.items():
        print(f"[{name}] {desc}")
        table = D4RL_REFERENCE if name == "d4rl" else V5_REFERENCE
        for env, (lo, hi) in table.items():
            note = f"  ({V5_REFERENCE_NOTES[env]})" if name == "v5" and env in V5_REFERENCE_NOTES else ""
            print(f"  {env:12s} random {lo:10.2f}  expert {hi:10.2f}{note}")
        if not table:
            print("  (not measured yet)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlkit2-data", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="generate datasets with D4RL's recipe on the v5 envs (resumable)",
                       description="Generate datasets with D4RL's recipe on Gymnasium's v5 envs, under their own "
                                   "names <env>-v5-<kind> (D4RL names are D4RL's own files and are refused).",
                       formatter_class=argparse.RawTextHelpFormatter)
    m.add_argument("names", nargs="+",
                   help="generated names: <env>-v5-<kind> (hopper-v5-medium, walker2d-v5-medium-replay), or\n"
                        "<env>-v5-all for all five kinds; env: halfcheetah|hopper|walker2d, kind:\n"
                        "random|medium|medium-replay|medium-expert|expert")
    m.add_argument("--transitions", type=int, default=1_000_000, help="rows of random/medium/expert (D4RL: 1M)")
    m.add_argument("--train-steps", type=int, default=1_000_000, help="SAC env steps for the behaviour policies")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--out", default="", help="output file (one name only); default <data dir>/<name>.hdf5")
    m.add_argument("--data-dir", default="", help="default $RLKIT2_DATA_DIR or ~/.cache/rlkit2/datasets")
    m.add_argument("--eval-every", type=int, default=5_000, help="policy snapshot/evaluation period (env steps)")
    m.add_argument("--learning-starts", type=int, default=5_000)
    m.add_argument("--threads", type=int, default=1, help="torch threads")
    m.add_argument("--workers", type=int, default=0,
                   help="processes collecting at once (default 0: one per CPU; the data do not depend on it)")
    m.add_argument("--hidden", default="256x256", help="SAC MLP widths, e.g. 64x64 for a cheap CPU run")
    m.add_argument("--force", action="store_true", help="overwrite an output made with other settings")
    m.add_argument("--extend-from", type=int, default=0, metavar="STEPS",
                   help="start from a finished run of STEPS env steps (same env/seed/width) instead of from scratch")
    m.add_argument("--stop-training", action="store_true",
                   help="finish the (killed, resumable) SAC run with the snapshots it has instead of training on")
    m.add_argument("--behaviour", choices=["auto", "shipped", "train"], default="auto",
                   help="behaviour policies: auto = the shipped ones when the env has any, else SAC trained here;\n"
                        "shipped = shipped only; train = train SAC here (--train-steps etc.) even if shipped")
    m.add_argument("--policies-dir", default="",
                   help="shipped policies (<dir>/<env>/<role>.safetensors + .json); default $RLKIT2_POLICIES_DIR\n"
                        "or the package's rlkit2/data/policies")
    m.add_argument("--quiet", action="store_true")
    m.set_defaults(fn=_make)
    i = sub.add_parser("info", help="summarise a dataset: a D4RL, robomimic or Minari file/directory, a generated\n"
                                    "or D4RL name, or minari:<id> (the format is told by the file's keys)")
    i.add_argument("dataset")
    i.set_defaults(fn=_info)
    r = sub.add_parser("refs", help="print the reference returns used for normalised scores")
    r.set_defaults(fn=_refs)
    pol = sub.add_parser("policies", help="list the shipped behaviour policies (cards verified)")
    pol.add_argument("envs", nargs="*", help="halfcheetah, hopper, walker2d (default: all)")
    pol.add_argument("--policies-dir", default="", help="default $RLKIT2_POLICIES_DIR or the package's")
    pol.set_defaults(fn=_policies)
    e = sub.add_parser("export-policy", help="write a SAC snapshot's actor as a shipped policy (safetensors + card)",
                       formatter_class=argparse.RawTextHelpFormatter)
    e.add_argument("snapshot", help="a behaviour-policy snapshot: <work dir>/policies/step_*.pt")
    e.add_argument("--env", required=True, help="halfcheetah, hopper or walker2d")
    e.add_argument("--role", required=True, help="expert, medium or snapshot-<env steps>")
    e.add_argument("--seed", type=int, required=True, help="the training run's seed")
    e.add_argument("--out", default="", help="policies dir to write <env>/<role>.*; default the package's")
    e.add_argument("--env-steps", type=int, default=None, help="env steps trained (default: the snapshot's step)")
    e.add_argument("--learning-starts", type=int, default=None, help="the run's random warm-up steps")
    e.add_argument("--returns", type=float, nargs=2, metavar=("MEAN", "STD"), default=None,
                   help="greedy return mean/std if already measured (default: measured now)")
    e.add_argument("--eval-episodes", type=int, default=10)
    e.set_defaults(fn=_export_policy)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except RLKitError as e:
        print(f"rlkit2-data: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
