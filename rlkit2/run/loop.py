"""The one run loop: every family's training runs through `RunLoop` with a small `Phase` of its own.

The loop owns, once: resume (the newest good checkpoint, skipped ones reported), the checkpoint format, the
log window (`MetricAccumulator`: window means of the learner's metrics), the evaluation cadence, NaN handling
(`UpdateGuard`), data-parallel rank roles (rank 0 logs, evaluates, checkpoints and saves the policy) and the
final policy. A phase owns what differs: how one `advance()` moves its step counter (a learner update, an env
step, an episode, an RL iteration), its evaluation, its own state, and how its policy is saved.

Checkpoint (`rlkit2-run-v2`): step, agent, the resolved config, the learner's state, skipped updates, the log
window, and one entry per rank with that rank's RNGs and the phase's rank-local state (replay contents,
explorer noise, env streams). Checkpoints of the earlier per-runner layouts load
through `upgrade` (control, imitation, language).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from omegaconf import DictConfig, OmegaConf

from rlkit2 import checkpoint as ckpt
from rlkit2 import distributed
from rlkit2.core import ConfigError
from rlkit2.logging import Logger, MultiLogger, say
from rlkit2.progress import progress
from rlkit2.run.common import config_diff, crossed, evaluating, resolve_resume, truncate_metrics
from rlkit2.run.guard import MetricAccumulator, UpdateGuard
from rlkit2.run_config import config_changes
from rlkit2.rundir import BEST_FILE
from rlkit2.seeding import rng_state, set_rng_state
from rlkit2.video import video_path

FORMAT = "rlkit2-run-v2"
# trainer.keep_best metrics that are errors: the best policy is the one with the lowest (every other: highest)
LOWER_IS_BETTER = frozenset({"valid/action_mse"})


@dataclasses.dataclass
class Advance:
    """What one `Phase.advance()` did, for the loop's cadence decisions."""

    prev: int  # the phase's step before the advance
    boundary: bool = True  # a checkpoint taken here resumes exactly (online: an episode boundary)
    extra: dict[str, float] = dataclasses.field(default_factory=dict)  # logged with the next log row
    log_now: bool = False  # log a row now, off the log_every grid (per-episode phases)
    eval_now: bool | None = None  # None: the loop's rule (crossing eval_every, or the last step)
    checkpoint_now: bool = False  # checkpoint here whatever checkpoint_every says


class Phase(Protocol):
    """A family's part of a run. `step` counts the phase's own unit, up to `total`."""

    label: str
    unit: str  # what `step` counts, said at start: "learner updates", "env steps", "RL iterations", ...
    step: int
    total: int

    def advance(self, update: Callable[[], None]) -> Advance:
        """Do the next piece of work, calling `update()` for each learner update."""

    def evaluate(self) -> dict[str, float]: ...

    def local_state_dict(self) -> dict[str, Any]: ...

    def load_local_state_dict(self, state: dict[str, Any]) -> None: ...

    def save_policy(self, run_dir: Path, metrics: dict[str, float], *, best: bool = False) -> Path:
        """Save the deployable policy in `run_dir` (the final one, or with `best` the one `trainer.keep_best`
        selects) with the evaluation `metrics` it scored; returns its path."""

    def finish(self, final: dict[str, float], run_dir: Path) -> dict[str, float]:
        """The run's final metrics (may add the phase's own) after the deployable policy is saved."""


class RunLoop:
    def __init__(self, cfg: Any, run_dir: Path, logger: Logger, phase: Phase, learner: Any,
                 samplers: Any = (), on_evaluate: Callable[[int, dict[str, float]], None] | None = None):
        self.cfg, self.run_dir, self.phase, self.learner = cfg, Path(run_dir), phase, learner
        self.trainer = cfg.trainer
        self.rank = distributed.rank()
        self.logger = logger if self.rank == 0 else MultiLogger([])  # only rank 0 logs
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.guard = UpdateGuard(learner, str(self.trainer.nan_policy), self.ckpt_dir, samplers)
        self.acc = MetricAccumulator()
        self.last_eval: dict[str, float] = {}
        self.last_saved_step = -1
        self.on_evaluate = on_evaluate
        self.keep_best = str(getattr(self.trainer, "keep_best", "") or "")
        self.best: dict[str, Any] | None = None  # trainer.keep_best: {"metric", "value", "step"} of the best so far
        self._t_log, self._log_step = time.perf_counter(), 0

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        cfg = OmegaConf.to_container(self.cfg, resolve=True) if isinstance(self.cfg, DictConfig) else None
        local = {"rng": rng_state(), **self.phase.local_state_dict()}
        return {"format": FORMAT, "step": self.phase.step, "agent": str(self.cfg.agent.name), "config": cfg,
                "learner": self.learner.state_dict(), "skipped_updates": self.guard.skipped,
                "metric_acc": self.acc.state_dict(), "best": self.best,
                "ranks": distributed.gather_objects(local)}

    def save_checkpoint(self) -> Path | None:
        self.guard.check_before_save(self.phase.step)
        state = self.state()  # every rank takes part in gathering the rank-local states
        self.last_saved_step = self.phase.step
        if self.rank != 0:
            return None
        path = ckpt.save(state, ckpt.checkpoint_path(self.ckpt_dir, self.phase.step))
        ckpt.prune(self.ckpt_dir, int(self.trainer.keep_checkpoints))
        return path

    def load_state(self, state: dict[str, Any], own: bool = True) -> None:
        """Restore a checkpoint's state; `own`: one of this run's (a resume), else another run's (`init_from`,
        `resume=<another run>`), whose best-so-far (`trainer.keep_best`) stays with that run."""
        state = upgrade(state)
        if state.get("agent") not in (None, str(self.cfg.agent.name)):
            raise ConfigError(f"checkpoint is for agent '{state['agent']}', not '{self.cfg.agent.name}'")
        ranks = state["ranks"]
        if len(ranks) != distributed.world_size():
            raise ConfigError(f"checkpoint was written by {len(ranks)} process(es); resume it with as many "
                              f"(this run has {distributed.world_size()})")
        try:
            self.learner.load_state_dict(state["learner"])
        except (RuntimeError, KeyError, ValueError) as e:  # e.g. agent.hidden changed since the checkpoint
            raise ConfigError(f"the checkpoint does not fit this run's agent ({config_diff(state, self.cfg, e)}); "
                              "resume with the config it was written with, or use a new run dir") from e
        local = ranks[self.rank]
        self.phase.load_local_state_dict(local)
        if local.get("rng") is not None:
            set_rng_state(local["rng"])
        if state.get("metric_acc") is not None:
            self.acc.load_state_dict(state["metric_acc"])
        self.phase.step = int(state["step"])
        self.best = self._restored_best(state.get("best")) if own else None  # another run's best file is not here
        self.guard.skipped = int(state.get("skipped_updates", 0))
        self.last_saved_step = self.phase.step

    def init_from(self) -> None:
        """A new run starting from another run's checkpoint (`init_from`): its state and step, this run's config
        (optimiser hyper-parameters included; schedulers continue the checkpoint's schedule; same seed)."""
        path = str(self.cfg.get("init_from", "") or "")
        if not path:
            return
        if not Path(path).is_file():
            raise ConfigError(f"init_from={path}: no such checkpoint file (and no checkpoint of this run to resume)")
        state = upgrade(ckpt.load(path, trust=bool(self.cfg.get("trust_pickle", False))))
        saved_seed = (state.get("config") or {}).get("seed")
        if saved_seed is not None and int(saved_seed) != int(self.cfg.seed):
            raise ConfigError(f"init_from={path}: seed={self.cfg.seed}, the checkpoint's run had seed={saved_seed}; "
                              "a run started from a checkpoint continues its random streams, so keep its seed")
        # the optimisers' hyper-parameters are this run's (a fine-tuning learning rate), not the checkpoint's
        optimizers = dict(getattr(self.learner, "optimizers", {}) or {})
        settings = {k: [{h: v for h, v in g.items() if h != "params"} for g in o.param_groups]
                    for k, o in optimizers.items()}
        try:
            self.load_state(state, own=False)
        except ConfigError as e:
            raise ConfigError(f"init_from={path}: {e}") from e
        for k, o in optimizers.items():
            for group, mine in zip(o.param_groups, settings[k], strict=True):
                group.update(mine)
        changed = config_changes(state.get("config"), self.cfg)
        say(f"[rlkit2] initialised from {path} at step {self.phase.step}"
            + (f"; settings changed since: {', '.join(changed)}" if changed else ""))

    def resume(self) -> None:
        source = resolve_resume(str(self.cfg.resume), self.run_dir)
        if source is None:
            self.init_from()
            return
        found = ckpt.resume_state(source, trust=bool(self.cfg.get("trust_pickle", False)), own_dir=self.ckpt_dir)
        if found is None:
            say(f"[rlkit2] resume: no valid checkpoint in {source}; starting fresh")
            truncate_metrics(self.logger, 0)  # rows a run killed before its first checkpoint logged are redone
            self.init_from()
            return
        path, state = found
        try:
            self.load_state(state, own=Path(path).resolve().parent == self.ckpt_dir.resolve())
        except ConfigError as e:
            raise ConfigError(f"resume from {path}: {e}") from e
        truncate_metrics(self.logger, self.phase.step)
        say(f"[rlkit2] resumed from {path} at step {self.phase.step}")

    # ------------------------------------------------------------------ the loop
    def update(self) -> None:
        metrics = self.guard.step(self.phase.step)
        if metrics is not None:
            self.acc.add(metrics)

    def evaluate(self) -> dict[str, float]:
        if self.rank != 0:
            return {}
        # Evaluation never moves the training's random streams: where it falls (or whether it runs at all, e.g.
        # the last step of a shorter run that is later resumed) must not change what is learned.
        saved = rng_state()
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
        recorder = getattr(self.phase, "recorder", None)  # trainer.video: the first episode is filmed
        if recorder is not None:
            recorder.arm(video_path(self.run_dir, self.phase.step))
        try:
            with torch.random.fork_rng(devices=devices):
                self.last_eval = self.phase.evaluate()
        finally:
            set_rng_state(saved)
        if recorder is not None and recorder.last_video is not None:
            self.logger.video("eval/video", recorder.last_video, self.phase.step)
        if self.on_evaluate is not None:
            self.on_evaluate(self.phase.step, self.last_eval)
        self._keep_best(self.last_eval)
        return self.last_eval

    def _keep_best(self, ev: dict[str, float]) -> None:
        """trainer.keep_best: after an evaluation that beats every earlier one on the metric, the phase saves
        the policy as its best (strictly higher, or lower for an error in LOWER_IS_BETTER: ties keep the earlier
        policy)."""
        name = self.keep_best
        if not name:
            return
        if name not in ev:
            raise ConfigError(f"trainer.keep_best={name}: the evaluation reports no such metric; it reports "
                              f"{', '.join(sorted(ev))}")
        value = float(ev[name])
        sign = -1.0 if name in LOWER_IS_BETTER else 1.0
        if not math.isfinite(value) or (self.best is not None and sign * value <= sign * float(self.best["value"])):
            return
        self.best = {"metric": name, "value": value, "step": self.phase.step}
        self.phase.save_policy(self.run_dir, ev, best=True)
        ckpt.atomic_write_bytes(self.run_dir / BEST_FILE, (json.dumps(self.best) + "\n").encode())

    def _restored_best(self, best: dict[str, Any] | None) -> dict[str, Any] | None:
        """The checkpoint's best-so-far if the run dir's best policy is still that one (`best.json` says which
        it holds); else it is tracked again from this step, and said so."""
        if best is None or not self.keep_best:  # older checkpoints have none; keep_best off tracks nothing
            return None
        if best.get("metric") != self.keep_best:
            say(f"[rlkit2] trainer.keep_best is now {self.keep_best} (was {best.get('metric')}): the best policy is "
                "chosen again from this step on")
            return None
        try:
            on_disk = json.loads((self.run_dir / BEST_FILE).read_text())
        except (OSError, ValueError):
            on_disk = None
        if on_disk != best:  # e.g. an older checkpoint resumed after the run had saved a later best
            say(f"[rlkit2] the best policy in {self.run_dir} is not the checkpoint's best ({best}): it is chosen "
                "again from this step on")
            return None
        return best

    def _log(self, extra: dict[str, float], bar: Any) -> None:
        now = time.perf_counter()
        metrics = self.acc.pop()
        if self.guard.skipping:
            metrics["train/skipped_updates"] = float(self.guard.skipped)
        if not metrics and not extra:
            return
        metrics["time/steps_per_s"] = (self.phase.step - self._log_step) / max(now - self._t_log, 1e-9)
        metrics.update(extra)
        self._t_log, self._log_step = now, self.phase.step
        self.logger.write(metrics, self.phase.step)
        bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in list(metrics.items())[:3]})

    def run(self) -> dict[str, float]:
        self.resume()
        phase, tr = self.phase, self.trainer
        start, t0 = phase.step, time.perf_counter()
        self._t_log, self._log_step = t0, start  # the first log window starts here (after any resume)
        if self.rank == 0:
            say(f"[rlkit2] budget: {phase.total} {phase.unit}" + (f", from step {start}" if start else ""))
        bar = progress(phase.total, phase.step, phase.label, enabled=bool(tr.progress) and self.rank == 0)
        checkpoint_due = False
        try:
            while phase.step < phase.total:
                adv = phase.advance(self.update)
                s = phase.step
                bar.update(s - adv.prev)
                if adv.log_now or (crossed(adv.prev, s, int(tr.log_every)) and (self.acc.count or self.guard.skipping)):
                    self._log(adv.extra, bar)
                due = adv.eval_now if adv.eval_now is not None else (
                    crossed(adv.prev, s, int(tr.eval_every)) or s == phase.total)
                if due and evaluating(tr) and self.rank == 0:
                    ev = self.evaluate()
                    self.logger.write(ev, s)
                    score = ev.get("eval/normalized_score", ev.get("eval/return", float("nan")))
                    bar.set_postfix({"eval": f"{score:.3g}"})
                checkpoint_due = checkpoint_due or crossed(adv.prev, s, int(tr.checkpoint_every))
                if adv.checkpoint_now or (checkpoint_due and adv.boundary):
                    self.save_checkpoint()
                    checkpoint_due = False
        finally:
            bar.close()
            getattr(phase, "close", lambda: None)()
        elapsed = time.perf_counter() - t0
        if self.last_eval or self.rank != 0 or not evaluating(tr):
            final = dict(self.last_eval)
        else:
            final = self.evaluate()
        if self.best is not None:
            final["best/value"], final["best/step"] = float(self.best["value"]), float(self.best["step"])
        final["time/seconds"] = elapsed
        final["time/steps_per_s"] = (phase.step - start) / max(elapsed, 1e-9)
        if self.last_saved_step != phase.step:
            self.save_checkpoint()
        if self.rank == 0:
            final = phase.finish(final, self.run_dir)
        distributed.barrier()
        return final


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of the earlier per-runner layouts, in this format (nothing is lost: the same fields move)."""
    if state.get("format") == FORMAT:
        return state
    if "ranks" in state and state["ranks"] and "random_rng" in state["ranks"][0]:  # the control runner's
        ranks = [dict(r) for r in state["ranks"]]
        acc = ranks[0].get("metric_acc")
        for r in ranks:
            r.pop("metric_acc", None)
        return {**state, "format": FORMAT, "ranks": ranks, "metric_acc": acc}
    if "online_replay" in state:  # the imitation runner's (one process)
        local = {"rng": state.get("rng"), "episode": state.get("episode", 0), "replay": state.get("replay"),
                 "online_replay": state.get("online_replay"), "policy": state.get("policy"),
                 "explorer": state.get("explorer")}
        return {**state, "format": FORMAT, "ranks": [local]}
    if "ranks" in state:  # the language runner's: ranks hold rng and env
        return {**state, "format": FORMAT}
    raise ConfigError("checkpoint layout not recognised (no 'ranks'); it was not written by an rlkit2 runner")
