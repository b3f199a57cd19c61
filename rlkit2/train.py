"""`rlkit2-train`: the Hydra entry point for every agent family.

    rlkit2-train agent=sac env=hopper trainer.total_steps=50000
    rlkit2-train experiment=qsarsa_ac_halfcheetah_medium
    rlkit2-train -m seed=0,1,2 agent.actor_lr=1e-4,3e-4 hydra/launcher=joblib

Configs live inside the package (`pkg://rlkit2.conf`), so a plain wheel install works.
"""

from __future__ import annotations

import difflib
import importlib
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import psutil
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import rlkit2.config  # noqa: F401 - registers the top-level schemas
from rlkit2 import distributed, run_config, rundir
from rlkit2.core import ConfigError, RLKitError
from rlkit2.logging import ConsoleLogger, JsonlLogger, Logger, MultiLogger, WandbLogger, say
from rlkit2.registry import _ENV_MODULES, agent_names, get_agent, get_runner
from rlkit2.run.common import validate_run
from rlkit2.run_config import override_keys
from rlkit2.rundir import REFERENCES_FILE, resuming

JOB_DIR_MAX = 80


def job_dir_name(override_dirname: str) -> str:
    """A sweep job's dir name: its overrides (`a=1,b=2`) as one path component, at most JOB_DIR_MAX characters
    (a long one keeps its start and gets a hash of the whole, so names stay unique and readable)."""
    import hashlib

    name = str(override_dirname).replace("/", "_").replace("\\", "_")
    if len(name) <= JOB_DIR_MAX:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: JOB_DIR_MAX - 9]}-{digest}"


if not OmegaConf.has_resolver("rlkit2_job_dir"):  # conf/config.yaml's hydra.sweep.subdir uses it
    OmegaConf.register_new_resolver("rlkit2_job_dir", job_dir_name)


def register_schemas() -> None:
    """Import every agent and env module so their dataclass schemas are in the ConfigStore."""
    agent_names()
    for module in _ENV_MODULES.values():
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose a run config in Python, exactly as `rlkit2-train <overrides>` would (no run dir, no logging)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    register_schemas()
    with initialize_config_module(config_module="rlkit2.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides or []))


def concurrent_jobs() -> int:
    """How many training jobs share this machine now: torchrun's local world size, a joblib sweep's n_jobs."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    if local > 0:
        return local
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            launcher: Any = hc.launcher
            n_jobs = launcher.get("n_jobs") if launcher is not None else None
            if n_jobs is not None:
                return int(n_jobs) if int(n_jobs) > 0 else psutil.cpu_count(logical=False) or 1
    return 1


def resolve_threads(threads: Any) -> int:
    """`trainer.threads` -> torch threads: a number as given; "auto": physical cores // concurrent jobs."""
    if str(threads) != "auto":
        n = int(str(threads))
        if n <= 0:
            raise ConfigError(f"trainer.threads={threads}: expected 'auto' or a positive number of threads")
        return n
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return max(1, cores // concurrent_jobs())


def set_threads(threads: Any) -> int:
    n = resolve_threads(threads)
    torch.set_num_threads(n)
    return n


def build_logger(cfg: DictConfig, run_dir: Path) -> Logger:
    lc = cfg.logger
    loggers: list[Logger] = []
    if lc.jsonl:
        loggers.append(JsonlLogger(run_dir))
    if lc.console:
        loggers.append(ConsoleLogger())
    if lc.wandb:
        hc = HydraConfig.get() if HydraConfig.initialized() else None  # None: in-process `run(compose(...))`
        multirun = hc is not None and hc.mode == RunMode.MULTIRUN
        group = lc.group or (Path(hc.sweep.dir).name if hc is not None and multirun else None)
        name = cfg.name or ((hc.job.override_dirname or None) if hc is not None else None)
        loggers.append(WandbLogger(lc.project, run_dir, OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
                                   group=group, name=name, mode=lc.mode, entity=lc.entity, tags=list(lc.tags)))
    return MultiLogger(loggers)


def run(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] | None = None) -> dict[str, float]:
    """Run one training job described by a composed config, writing into `run_dir`.

    `overrides`: the command-line overrides (`rlkit2-train` passes them). On resume the run's saved config is
    used, and only the safe settings the overrides name may change (rlkit2.run_config); without `overrides`,
    every difference between `cfg` and the saved config counts as asked for.
    """
    run_dir = Path(run_dir)
    if resuming(cfg.resume):  # before anything is written: a refused resume changes nothing on disk
        cfg = run_config.for_resume(cfg, run_dir, None if overrides is None else override_keys(overrides))
    entry = get_agent(cfg.agent.name)
    runner = get_runner(entry.family)  # imports the family's runner module (its Hydra schemas too)
    validate_run(cfg)  # seed, trainer, env and agent ranges, before any work (rlkit2.validation)
    set_threads(cfg.trainer.threads)
    fresh = rundir.is_unused(run_dir)
    with rundir.exclusive(run_dir):  # one writer per run dir, released on any exit
        if not resuming(cfg.resume):
            rundir.set_aside_earlier_run(run_dir)
        run_config.write(run_dir, cfg, overrides or ())
        run_config.write_job_info(run_dir, overrides or (), resuming(cfg.resume))
        _banner(cfg, run_dir)
        logger = build_logger(cfg, run_dir)
        try:
            final = runner(cfg, run_dir, logger)
        except BaseException:
            distributed.shutdown(clean=False)
            logger.close()
            if fresh:  # failed before it produced anything: leave no empty run dir for plots and sweeps
                rundir.remove_if_unproductive(run_dir)
            raise
        logger.close()
        final = _finish(cfg, run_dir, final)
    return final


def _banner(cfg: DictConfig, run_dir: Path) -> None:
    """What this run is, before it starts (the dataset line follows once the runner has loaded it)."""
    if not distributed.is_main():
        return
    env = cfg.env.get("id") or cfg.env.get("task") or cfg.env.get("kind")
    source = cfg.env.get("dataset") or ""
    say(f"[rlkit2] agent {cfg.agent.name} | env {env}{f' | dataset {source}' if source else ''} | seed {cfg.seed} "
        f"| device {cfg.trainer.device} | threads {torch.get_num_threads()} | "
        f"{'resume ' + str(cfg.resume) if resuming(cfg.resume) else 'fresh run'}\n[rlkit2] run dir: {run_dir}")


def _finish(cfg: DictConfig, run_dir: Path, final: dict[str, float]) -> dict[str, float]:
    is_main = distributed.is_main()
    distributed.shutdown()  # no-op unless launched by torchrun: leave gloo/NCCL before the interpreter exits
    if not is_main:
        return final
    refs_file = run_dir / REFERENCES_FILE
    refs: dict[str, dict[str, Any]] = json.loads(refs_file.read_text()) if refs_file.is_file() else {}
    if cfg.trainer.plot and (run_dir / "metrics.jsonl").exists():
        from rlkit2.logging import read_metrics
        from rlkit2.plotting import pick_key, plot_runs, saved_reference_levels

        key = pick_key(read_metrics(run_dir))
        if key:
            plot_runs([run_dir], run_dir / "learning_curve.png", title=f"{cfg.agent.name} on {cfg.env.id}",
                      references=saved_reference_levels([run_dir], key) or None)
    summary = "  ".join(f"{k}={v:.4g}" for k, v in final.items() if isinstance(v, int | float))
    say(f"[rlkit2] done: {summary}")
    if refs:
        say(_side_by_side(cfg.agent.name, final, refs))
    say(f"[rlkit2] run dir: {run_dir}")
    return final


def _side_by_side(agent: str, final: dict[str, float], refs: dict[str, dict[str, Any]]) -> str:
    """The final score beside the levels that give it meaning (offline runs), one row each."""
    key = next(iter(refs.values()))["key"]
    rows = [(name, r["level"], r["note"]) for name, r in refs.items()]
    if isinstance(final.get(key), int | float):
        rows.append((f"{agent} (this run, last evaluation)", float(final[key]), ""))
    width = max(len(name) for name, _, _ in rows)
    lines = [f"[rlkit2] {key}:"] + [f"[rlkit2]   {name:<{width}}  {level:8.2f}  {note}".rstrip()
                                    for name, level, note in rows]
    return "\n".join(lines)


@hydra.main(config_path="pkg://rlkit2.conf", config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    try:
        final = run(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))
    except RLKitError as e:  # a user mistake: one clear line and exit code 2 (HYDRA_FULL_ERROR=1: the traceback)
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or hc.mode == RunMode.MULTIRUN:
            raise
        print(f"rlkit2-train: error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    # The value an Optuna sweeper maximises: the normalised score, else the return or success.
    for key in ("eval/normalized_score", "eval/success_rate", "eval/return", "eval/true_score"):
        if key in final and isinstance(final[key], int | float) and math.isfinite(final[key]):
            return float(final[key])
    return float("nan")


def check_overrides(args: list[str]) -> str | None:
    """A one-line message for an override that names no option (Hydra's own advice, "+key=...", would add it),
    or None. Checked by composing once before Hydra does; flags (-m, --cfg, ...) are left to Hydra."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if any(a.startswith("-") for a in args):
        return None
    overrides = [a for a in args if not a.startswith("hydra.") and "=" in a]
    try:
        compose(overrides)
        return None
    except (HydraException, OmegaConfBaseException) as e:
        bad = next((o for o in overrides if f"'{o.split('=', 1)[0].lstrip('+~')}'" in str(e)), None)
        if bad is None or not str(e).startswith("Could not override"):
            return None
        key = bad.split("=", 1)[0]
        parent, _, leaf = key.rpartition(".")
        try:
            node = compose([o for o in overrides if o != bad])
            options = [str(k) for k in (OmegaConf.select(node, parent) if parent else node).keys()]
        except Exception:  # noqa: BLE001 - the suggestion is a courtesy; the error stands without it
            options = []
        close = difflib.get_close_matches(leaf, options, n=1)
        hint = f"; did you mean '{parent + '.' if parent else ''}{close[0]}'?" if close else ""
        where = f" of '{parent}'" if parent else ""
        return f"'{key}' is not an option{where}{hint} (valid: {', '.join(sorted(options))})"


def main() -> Any:
    register_schemas()
    problem = check_overrides(sys.argv[1:])
    if problem is not None and os.environ.get("HYDRA_FULL_ERROR") != "1":
        print(f"rlkit2-train: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    return _hydra_main()


if __name__ == "__main__":
    main()
