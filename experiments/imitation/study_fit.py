"""How closely each offline BC-family policy of the study reproduces its own demonstrations (open-loop action
error): a policy far above the others here is under-fit, so the success table measures its training budget as
much as the shift.

    python -m experiments.imitation.study fit --task can        # -> results/study/<task>_fit.json + the table

For every seed's run dir under `--runs`/<task>/, each offline BC-family policy (BC, BC on the features,
BC-RNN-GMM) acts greedily on its own demos' observations in order (a recurrent actor restarting at each demo's
start, as at deployment); the score is the mean squared difference from the demonstrated action, overall and
per action dim. POIR is left out: its planner departs from the demos by design.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments import provenance
from experiments.imitation.study_plan import POLICIES, TASKS
from rlkit2.checkpoint import atomic_write_bytes

FITTED = ("bc", "bc_features", "bc_rnn_gmm", "bc_rnn_gmm_4x")


def policy_demo_error(run_dir: Path, demos: Path, obs_keys: list[str]) -> dict[str, Any]:
    """Open-loop squared action error of the policy saved in `run_dir` on the demos in `demos`."""
    from rlkit2.data.robomimic import read_robomimic
    from rlkit2.demo_fit import demo_action_error
    from rlkit2.policy import load_policy

    return demo_action_error(load_policy(run_dir), read_robomimic(demos, obs_keys=obs_keys).demos, obs_keys)


def fit(task_name: str, runs: Path, out: Path) -> dict[str, Any]:
    """Every seed's fit rows for `task_name`, written to `out`/<task>_fit.json; prints the table."""
    import torch

    from experiments.imitation.study import compose

    torch.set_num_threads(1)
    task = TASKS[task_name]
    obs_keys = list(compose([f"experiment={task.presets['bc']}"]).env.obs_keys)
    t0, rows = time.perf_counter(), []
    for seed_dir in sorted((runs / task_name).glob("seed*"), key=lambda p: int(p.name[4:])):
        for name in FITTED:
            if (seed_dir / name / "policy.pt").is_file() and (seed_dir / "demos.hdf5").is_file():
                rows.append({"seed": int(seed_dir.name[4:]), "policy": name,
                             **policy_demo_error(seed_dir / name, seed_dir / "demos.hdf5", obs_keys)})
    if not rows:
        raise SystemExit(f"no trained policies under {runs / task_name}/seed*/ ({', '.join(FITTED)})")
    # rows of run dirs no longer on disk stay (the file accumulates, as the study's results do); refitted ones
    # replace theirs
    path, fresh = out / f"{task_name}_fit.json", {(r["seed"], r["policy"]) for r in rows}
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("obs_keys") != obs_keys:
            raise SystemExit(f"{path} was fitted on other observation keys ({old.get('obs_keys')}); move it aside")
        rows += [r for r in old["rows"] if (r["seed"], r["policy"]) not in fresh]
    rows.sort(key=lambda r: (r["seed"], FITTED.index(r["policy"]) if r["policy"] in FITTED else len(FITTED)))
    data = {"task": task.name, "obs_keys": obs_keys, "rows": rows, "wall_s": time.perf_counter() - t0,
            "command": f"python -m experiments.imitation.study fit --task {task_name} --runs {runs}",
            "machine": provenance.machine(), "versions": provenance.versions("robosuite")}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
    print(table(data))
    return data


def table(data: dict[str, Any]) -> str:
    lines = [f"Open-loop action error on each seed's own demos ({data['task']}; mean squared error, greedy "
             "actions)", "", "| policy | seeds | MSE, mean over seeds | per seed | largest dims (mean MSE) |",
             "|---|---:|---:|---|---|"]
    for name in FITTED:
        rows = [r for r in data["rows"] if r["policy"] == name]
        if not rows:
            continue
        dims = np.mean([r["mse_per_dim"] for r in rows], axis=0)
        top = ", ".join(f"{i}: {dims[i]:.3f}" for i in np.argsort(dims)[::-1][:2])
        lines.append(f"| {POLICIES[name].label} | {len(rows)} | {statistics.mean(r['mse'] for r in rows):.4f} | "
                     + ", ".join(f"s{r['seed']}: {r['mse']:.4f}" for r in rows) + f" | {top} |")
    return "\n".join(lines)
