"""What the offline evidence grid records: a finished run's row, the reference rows (zero-action policy,
behaviour policy, the data's own episodes), and the results JSON they go to (merged, written atomically)."""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments import provenance
from experiments.offline.grid_plan import (
    LAST_EVALS,
    SCHEMA,
    SCORE_KEY,
    SCORE_V5_KEY,
    Dataset,
    GridConfig,
    Run,
    dataset_file,
    raw_metadata,
)

# --------------------------------------------------------------------------- a finished run's row


@functools.cache
def versions() -> dict[str, str]:
    """The libraries a grid run depends on (one call per process: every row of a sitting shares them)."""
    return provenance.versions("gymnasium", "mujoco", "hydra")


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))


def run_row(run: Run, cfg: GridConfig) -> dict[str, Any] | None:
    """The result row of a finished run (an evaluation logged at step `updates`, and its policy saved), else None.

    wall_s is the training loop's time, rebuilt from the logged throughput windows (`time/steps_per_s` over each
    `log_every` stretch): it spans every sitting of a resumed run, counts the evaluations inside the windows,
    and leaves out setup and stretches redone after a kill. updates_per_s = updates / wall_s.
    """
    from rlkit2.logging import read_metrics

    d = run.dir(cfg.runs_dir)
    if not (d / "metrics.jsonl").is_file() or not (d / "policy.pt").is_file():
        return None
    rows = read_metrics(d)
    evals = sorted((int(r["step"]), float(r[SCORE_KEY])) for r in rows if _is_num(r.get(SCORE_KEY)))
    if not evals or evals[-1][0] < cfg.updates:
        return None
    v5 = sorted((int(r["step"]), float(r[SCORE_V5_KEY])) for r in rows if _is_num(r.get(SCORE_V5_KEY)))
    last = evals[-LAST_EVALS:]
    wall, prev = 0.0, 0
    for r in sorted((r for r in rows if _is_num(r.get("time/steps_per_s"))), key=lambda r: int(r["step"])):
        wall += (int(r["step"]) - prev) / float(r["time/steps_per_s"])
        prev = int(r["step"])
    return {
        "agent": run.agent, "dataset": run.dataset, "seed": run.seed,
        "score": float(np.mean([s for _, s in last])),
        "score_v5": float(np.mean([s for _, s in v5[-LAST_EVALS:]])) if v5 else None,
        "evals": [[step, score] for step, score in evals], "score_evals": len(last),
        "updates": evals[-1][0], "wall_s": wall if wall > 0 else None,
        "updates_per_s": evals[-1][0] / wall if wall > 0 else None,
        "run_dir": str(d), "recorded": now(),
        "machine": provenance.machine(), "versions": dict(versions()), "data": data_provenance(run, cfg),
    }


# the generation settings that fix a collection's rows, and its mean episode return as a fingerprint of the rows
# themselves: the same settings gave other rows on another machine (docs/datasets.md: MKL's per-CPU
# kernels change them), and the settings alone would not tell the two apart
DATA_KEYS = ("transitions", "seed", "behaviour_policies_sha256", "chunk_episodes", "dataset_mean_episode_return")


def data_provenance(run: Run, cfg: GridConfig) -> dict[str, Any]:
    """Which collection of the dataset a run trained on (see `dataset_collection`)."""
    ds = next((d for d in cfg.datasets if d.label == run.dataset), None)
    return dataset_collection(ds, cfg) if ds is not None else {}


def dataset_collection(ds: Dataset, cfg: GridConfig) -> dict[str, Any]:
    """The collection of `ds` in the data dir: the generation settings that fix its rows (`chunk_episodes`
    None: made by the earlier collection, chunked by rows, before December 2026) and the rows' mean episode
    return (`DATA_KEYS`); {"error": ...} when its metadata cannot be read."""
    from rlkit2.data.d4rl import generation_metadata

    try:
        md = generation_metadata(dataset_file(ds, cfg.data_dir))
    except Exception as e:  # noqa: BLE001 - provenance is best effort: the row still counts
        return {"error": f"{type(e).__name__}: {e}"}
    return {k: md.get(k) for k in DATA_KEYS} if md else {}


def _known(d: dict[str, Any] | None) -> dict[str, Any] | None:
    """A row's collection (its `DATA_KEYS`), or None where it was not recorded (rows are best effort)."""
    if not d or "error" in d or d.get("dataset_mean_episode_return") is None:
        return None
    return {k: d.get(k) for k in DATA_KEYS}


def check_one_collection(data: dict[str, Any], cfg: GridConfig) -> None:
    """Refuse to add runs on a collection of a dataset other than the one the results file's runs (and its
    dataset reference row) trained on: two collections made with the same settings on different machines move a
    score as much as agents differ, so one results file holds one collection of each dataset and its comparisons
    stay within it. Rows whose collection was not recorded are not held against it."""
    for ds in cfg.datasets:
        here = _known(dataset_collection(ds, cfg))
        if here is None:
            continue
        theirs = [_known(r.get("data")) for r in data.get("runs", []) if r["dataset"] == ds.label]
        ref = next((r for r in data.get("references", []) if (r["dataset"], r["kind"]) == (ds.label, "dataset")),
                   None)
        if ref is not None and isinstance(ref.get("return"), int | float):
            theirs.append({**here, "dataset_mean_episode_return": ref["return"]})
        other = next((d for d in theirs if d is not None and d != here), None)
        if other is not None:
            diff = ", ".join(f"{k} {other[k]} vs {here[k]}" for k in DATA_KEYS if other[k] != here[k])
            raise SystemExit(
                f"{cfg.results} holds runs of {ds.label} made on another collection of it than "
                f"{dataset_file(ds, cfg.data_dir)} ({diff}): runs on two collections are not comparable. Pass "
                "--results <another file> (and --runs-dir) for this collection, or point --data-dir (or the "
                "dataset path) at the collection those runs used.")


def check_rows_share_collections(data: dict[str, Any], path: Path) -> None:
    """The same rule on the merged rows, for sittings that share a results file: one collection per dataset."""
    seen: dict[str, dict[str, Any]] = {}
    for r in data.get("runs", []):
        d = _known(r.get("data"))
        if d is None:
            continue
        first = seen.setdefault(r["dataset"], d)
        if d != first:
            raise SystemExit(f"{path}: runs of {r['dataset']} on two collections (mean episode return "
                             f"{first['dataset_mean_episode_return']} and {d['dataset_mean_episode_return']}): "
                             "a sitting on another collection shares this file; give it its own --results.")


# --------------------------------------------------------------------------- reference rows


def zero_action_reference(ds: Dataset, cfg: GridConfig, seeds: int) -> dict[str, Any]:
    """The zero-action policy in the dataset's env: `eval_episodes` episodes per seed (seeded as the runs'
    evaluations are), each seed's mean normalised score one sample, scored with the runs' reference returns."""
    from rlkit2.envs.gym_mujoco import GymEnvConfig, make_gym_env

    from rlkit2.data.d4rl import generation_metadata
    from rlkit2.data.references import zero_action_metrics
    from rlkit2.run.common import eval_seed

    path = dataset_file(ds, cfg.data_dir)
    md = generation_metadata(path)
    env_cfg = GymEnvConfig(id=ds.env_id, dataset=str(path))
    scores, scores_v5, returns = [], [], []
    for seed in range(seeds):
        env = make_gym_env(env_cfg, seed=eval_seed(seed))
        m = zero_action_metrics(env, env_cfg, md, cfg.eval_episodes, eval_seed(seed))
        env.close()
        scores.append(m.get(SCORE_KEY))
        scores_v5.append(m.get(SCORE_V5_KEY))
        returns.append(m["eval/return"])
    return {"dataset": ds.label, "kind": "zero_action", "updated": now(), "scores": scores,
            "scores_v5": scores_v5 if all(s is not None for s in scores_v5) else None, "returns": returns,
            "seeds": seeds, "episodes": cfg.eval_episodes,
            "note": f"a policy that outputs zeros; {cfg.eval_episodes} episodes per seed"}


def dataset_reference(ds: Dataset, cfg: GridConfig) -> dict[str, Any]:
    """The dataset's own mean episode return (the behaviour policy as it collected the data), normalised with
    the runs' reference returns."""
    from rlkit2.envs.gym_mujoco import GymEnvConfig

    from rlkit2.data.d4rl import episode_returns, generation_metadata, read_d4rl
    from rlkit2.data.references import DATASET_NOTE
    from rlkit2.data.scores import score_functions

    path = dataset_file(ds, cfg.data_dir)
    metadata = generation_metadata(path)
    recorded = (metadata or {}).get("dataset_mean_episode_return")
    if isinstance(recorded, int | float):  # a generated file says it: no need to read its 1M rows
        ret = float(recorded)
    else:
        arrays = read_d4rl(path).arrays
        ret = float(np.mean(episode_returns(arrays["rewards"], arrays["terminals"], arrays["timeouts"])))
    fns = score_functions(GymEnvConfig(id=ds.env_id, dataset=str(path)), metadata)
    v5 = fns.get(SCORE_V5_KEY)
    return {"dataset": ds.label, "kind": "dataset", "updated": now(),
            "score": fns[SCORE_KEY](ret) if SCORE_KEY in fns else None,
            "score_v5": v5(ret) if v5 else None, "return": ret, "note": DATASET_NOTE}


def behaviour_reference(ds: Dataset, cfg: GridConfig) -> dict[str, Any] | None:
    """The behaviour policy's return from the file's metadata (`rlkit2.data.references.behaviour_return`),
    normalised with the runs' reference returns. None for a file without that metadata (D4RL's own files)."""
    from rlkit2.envs.gym_mujoco import GymEnvConfig

    from rlkit2.data.d4rl import generation_metadata
    from rlkit2.data.references import behaviour_return
    from rlkit2.data.scores import score_functions

    path = dataset_file(ds, cfg.data_dir)
    md = generation_metadata(path) or raw_metadata(path)
    found = behaviour_return(md)
    if found is None:
        return None
    ret, what = found
    fns = score_functions(GymEnvConfig(id=ds.env_id, dataset=str(path)), md)
    if SCORE_KEY not in fns:
        return None
    v5 = fns.get(SCORE_V5_KEY)
    return {"dataset": ds.label, "kind": "behaviour", "updated": now(), "score": fns[SCORE_KEY](ret),
            "score_v5": v5(ret) if v5 else None, "policy_return": ret,
            "policy_return_std": md.get("policy_return_std"), "note": f"metadata: {what}"}


# --------------------------------------------------------------------------- the results JSON


def load_results(path: Path, budget: dict[str, Any]) -> dict[str, Any]:
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("grid") != budget:
            raise SystemExit(f"{path} holds runs of another budget ({data.get('grid')}); this grid is {budget}. "
                             "Pass --results <another file> (and --runs-dir) for it.")
        return data
    return {"schema": SCHEMA, "grid": budget, "runs": [], "references": [], "sessions": []}


_ROW_KEYS = {"runs": lambda r: (r["agent"], r["dataset"], int(r["seed"])),
             "references": lambda r: (r["dataset"], r["kind"]),
             # two shards started in the same second differ by their shard (and machines by their host)
             "sessions": lambda r: (r["started"], r.get("launched"), r.get("jobs"), r.get("shard"),
                                    (r.get("machine") or {}).get("host"))}


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def stamp(row: dict[str, Any]) -> str:
    """When a row was last written (`updated`, else a run's `recorded`; unstamped rows are the oldest)."""
    return str(row.get("updated") or row.get("recorded") or "")


def save_results(path: Path, data: dict[str, Any]) -> None:
    """Write `data`, first adopting the rows another grid sitting wrote to the same file since we read it (two
    sittings, say one per dataset and core, may share one results file): of two copies of a row, the one
    written last wins, so a sitting's stale copy never undoes another's newer row."""
    from rlkit2.checkpoint import update_json

    def merge(disk: dict[str, Any] | None) -> dict[str, Any]:
        if disk is not None and disk.get("grid") != data.get("grid"):
            raise SystemExit(f"{path} now holds runs of another budget ({disk.get('grid')}); this grid is "
                             f"{data.get('grid')}: not merging. Pass --results <another file>.")
        for part, key in _ROW_KEYS.items():
            rows = {key(r): r for r in data.setdefault(part, [])}
            for r in (disk or {}).get(part, []):  # the newer of two copies of a row wins: ours may be stale
                if key(r) not in rows or stamp(r) > stamp(rows[key(r)]):
                    rows[key(r)] = r
            data[part] = list(rows.values())
        data["runs"].sort(key=lambda r: (r["dataset"], r["agent"], r["seed"]))
        check_rows_share_collections(data, path)
        data["references"].sort(key=lambda r: (r["dataset"], r["kind"]))
        return data

    update_json(path, merge)


def recorded(data: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {(r["agent"], r["dataset"], int(r["seed"])) for r in data["runs"]}


def record_finished(runs: Sequence[Run], cfg: GridConfig, data: dict[str, Any]) -> list[Run]:
    """Add the rows of the runs finished on disk but not in `data` (saving after each); returns them."""
    done = recorded(data)
    added = []
    for run in runs:
        if run.key in done:
            continue
        row = run_row(run, cfg)
        if row is not None:
            data["runs"].append(row)
            save_results(cfg.results, data)
            added.append(run)
    return added


def add_references(cfg: GridConfig, data: dict[str, Any]) -> None:
    have = {(r["dataset"], r["kind"]): r for r in data["references"]}
    for ds in cfg.datasets:
        seeds = cfg.seeds_for(ds.label)
        z = have.get((ds.label, "zero_action"))
        if z is None or int(z.get("seeds", 0)) < seeds:
            print(f"[grid] zero-action policy on {ds.label}: {seeds} seeds x {cfg.eval_episodes} episodes", flush=True)
            data["references"] = [r for r in data["references"] if (r["dataset"], r["kind"]) != (ds.label,
                                                                                                   "zero_action")]
            data["references"].append(zero_action_reference(ds, cfg, seeds))
            save_results(cfg.results, data)
        if (ds.label, "dataset") not in have:
            data["references"].append(dataset_reference(ds, cfg))
            save_results(cfg.results, data)
        if (ds.label, "behaviour") not in have:
            b = behaviour_reference(ds, cfg)
            if b is not None:
                data["references"].append(b)
                save_results(cfg.results, data)
