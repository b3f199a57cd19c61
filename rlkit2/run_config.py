"""The run's resolved config as the source of truth: written once a run is accepted, read back on resume.

`<run_dir>/.hydra/config.yaml` (and `overrides.yaml`) are written by rlkit2, atomically, after the run has been
validated and its dir locked, never by a run that is refused (Hydra's own writer is off: `hydra.output_subdir`
is null in conf/config.yaml). On `resume=true` / `resume=<run dir>`, the saved config wins: the command line
needs no override retyped, and may change only what is safe to change mid-run (budget, cadence, logging,
threads). Any other difference that the user asked for is refused with the list of differences.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlkit2.checkpoint import atomic_write_bytes
from rlkit2.core import ConfigError

CONFIG_FILE = Path(".hydra") / "config.yaml"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
JOB_FILE = "job.json"  # this launch: full overrides, command line, Hydra job number
# Settings a resumed run may change: how long it runs and how it reports, never what it learns.
SAFE_ON_RESUME = ("trainer.total_steps", "trainer.eval_every", "trainer.eval_episodes", "trainer.log_every",
                  "trainer.checkpoint_every", "trainer.keep_checkpoints", "trainer.progress", "trainer.plot",
                  "trainer.video", "trainer.threads", "trainer.keep_best", "logger", "resume", "trust_pickle", "name")


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out if out or not prefix else {prefix: {}}
    return {prefix: node}


def _under(key: str, roots: Iterable[str]) -> bool:
    return any(key == r or key.startswith(r + ".") for r in roots)


def override_keys(overrides: Iterable[str]) -> set[str]:
    """`agent=td3_bc`, `+trainer.x=1`, `~logger.tags` -> the config keys they name (`agent`, `trainer.x`, ...)."""
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides if not o.startswith("hydra.")}


def _known(node: Any, cls: type) -> DictConfig:
    """`node` as `cls`'s schema of today: options added since take their defaults, options removed are dropped."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    kept = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if k in names}  # type: ignore[union-attr]
    merged = OmegaConf.merge(OmegaConf.structured(cls), kept)
    assert isinstance(merged, DictConfig)
    return merged


def _today(saved: DictConfig) -> DictConfig:
    """A run config saved by another rlkit2 version, in this version's trainer and agent schemas."""
    from rlkit2.config import TrainerConfig
    from rlkit2.registry import get_agent

    out = saved.copy()
    OmegaConf.set_struct(out, False)
    if "trainer" in saved:
        out.trainer = _known(saved.trainer, TrainerConfig)
    if "agent" in saved and "name" in saved.agent:
        out.agent = _known(saved.agent, get_agent(str(saved.agent.name)).config_cls)
    return out


def config_changes(saved: Any, cfg: Any) -> list[str]:
    """`key: X -> Y` for every setting of `cfg` that differs from the config a checkpoint saved (`init_from`)."""
    if not isinstance(saved, dict):
        return []
    try:  # in today's schemas: an option added since (its default) is not a change
        saved = OmegaConf.to_container(_today(OmegaConf.create(saved)), resolve=True)  # type: ignore[assignment]
    except (ConfigError, OmegaConfBaseException):  # e.g. an agent this version lacks: compare as saved
        pass
    now = _flat(OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg))
    before = _flat(saved)
    return [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(now) | set(before))
            if before.get(k) != now.get(k) and not _under(k, ("resume", "init_from"))]


def saved_run_dir(resume: str, run_dir: Path) -> Path:
    """The run dir whose saved config a `resume=` value points at (itself, a run dir, its checkpoints or one)."""
    r = str(resume).strip()
    if r.lower() in ("true", "auto", "1"):
        return Path(run_dir)
    p = Path(r)
    for candidate in (p, p.parent, p.parent.parent):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return p


def for_resume(cfg: DictConfig, run_dir: Path, explicit: Collection[str] | None) -> DictConfig:
    """The config a resumed run continues with: the saved one, plus the safe settings the caller changed.

    `explicit`: the keys given on the command line (`rlkit2-train`); None when the caller passed a whole
    config (`rlkit2.train.run`), in which case every difference counts as asked for.
    """
    source = saved_run_dir(str(cfg.resume), run_dir)
    path = source / CONFIG_FILE
    if not path.is_file():
        return cfg  # a run dir from before rlkit2 wrote its config: the checkpoint's own checks apply
    loaded = OmegaConf.load(path)
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path} is not a run config (a YAML mapping)")
    saved = _today(loaded)
    now_flat = _flat(OmegaConf.to_container(cfg, resolve=True))
    saved_flat = _flat(OmegaConf.to_container(saved, resolve=True))
    wanted = (set(now_flat) | set(saved_flat)) if explicit is None else set(explicit)
    everything = explicit is not None and "experiment" in wanted  # a preset changes many keys at once
    refused = []
    # only settings both configs have: an option this version added takes its default, one it removed is dropped
    shared = sorted(set(now_flat) & set(saved_flat))
    for key in shared:
        if now_flat[key] == saved_flat[key] or _under(key, SAFE_ON_RESUME):
            continue
        if everything or _under(key, wanted) or (explicit is None):
            refused.append(f"{key}: run {saved_flat[key]!r}, now {now_flat[key]!r}")
    if refused:
        raise ConfigError(f"resume of {source}: these settings differ from the run's saved config "
                          f"({path}) and cannot change mid-run:\n  " + "\n  ".join(refused)
                          + "\nresume with no overrides (the saved config is used), or start a new run dir")
    merged = saved.copy()
    OmegaConf.set_struct(merged, False)
    for key, value in now_flat.items():
        if _under(key, SAFE_ON_RESUME) and (explicit is None or _under(key, wanted) or key == "resume"):
            OmegaConf.update(merged, key, value, force_add=True)
    return merged


def write(run_dir: Path, cfg: DictConfig, overrides: Iterable[str] = ()) -> None:
    """Record the accepted run's resolved config (what a later resume reads) and its command-line overrides."""
    run_dir = Path(run_dir)
    atomic_write_bytes(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True).encode())
    atomic_write_bytes(run_dir / OVERRIDES_FILE, OmegaConf.to_yaml(OmegaConf.create(list(overrides))).encode())


def write_job_info(run_dir: Path, overrides: Iterable[str], resumed: bool) -> None:
    """`job.json`: this launch as a sweep tool reads it - the full overrides (a job dir's name is capped and
    leaves noisy keys out), the command line, Hydra's job number and sweep dir, host, pid, start time."""
    import datetime
    import json
    import os
    import socket
    import sys

    import rlkit2

    job: dict[str, object] = {}
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        hc = HydraConfig.get()
        num = OmegaConf.select(hc, "job.num", default=None)  # type: ignore[arg-type]  # "???" outside a multirun
        job = {"mode": str(hc.mode.name).lower() if hc.mode is not None else None, "num": num,
               "override_dirname": hc.job.override_dirname,
               "sweep_dir": hc.sweep.dir if hc.mode is not None and hc.mode.name == "MULTIRUN" else None}
    info = {"overrides": list(overrides), "argv": list(sys.argv), "resumed": bool(resumed), **job,
            "host": socket.gethostname(), "pid": os.getpid(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "rlkit2": rlkit2.__version__}
    atomic_write_bytes(Path(run_dir) / JOB_FILE, (json.dumps(info, indent=1) + "\n").encode())

