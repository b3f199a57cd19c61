"""The control training loop (family "control"): online (TD3, SAC) and offline (TD3+BC, IQL, Q-sarsa, BC).

Online: an exploring actor collects transitions into the replay; after
`learning_starts` random steps the learner updates every env step. Offline: the
replay holds a fixed dataset and the loop only calls `learner.step()`.

Both evaluate with `rlkit2.core.evaluate`, log through one `Logger`, and write
checkpoints with `rlkit2.checkpoint`. Online checkpoints are taken at episode
boundaries (each episode's reset seed is derived from the run seed and episode
index), so a resumed run reproduces the uninterrupted one exactly.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlkit2 import checkpoint as ckpt
from rlkit2 import distributed, validation
from rlkit2.core import ConfigError, DataError, NumericalError, evaluate
from rlkit2.data.scores import add_v5_score
from rlkit2.logging import JsonlLogger, Logger, MultiLogger, say
from rlkit2.policy import POLICY_FILE, save_policy
from rlkit2.progress import progress
from rlkit2.registry import Agent, EnvSpec, build_agent, get_agent, make_env, register_runner
from rlkit2.replay import TransitionReplay
from rlkit2.rundir import resuming
from rlkit2.seeding import rng_state, seed_everything, set_rng_state

EVAL_SEED_OFFSET = 10_000


def to_dataclass(node: Any, cls: type) -> Any:
    """An OmegaConf node (or dict, or dataclass) as an instance of `cls`."""
    if isinstance(node, cls):
        return node
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    assert isinstance(node, dict)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(node) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__} has no option(s) {unknown}; valid: {sorted(names)}")
    return cls(**node)


def env_spec(env: Any) -> EnvSpec:
    obs_space, act_space = env.observation_space, env.action_space
    if len(obs_space.shape) != 1 or len(act_space.shape) != 1:
        raise ConfigError(f"control agents need flat Box spaces; got {obs_space} and {act_space}")
    high = float(np.max(act_space.high))
    return EnvSpec(int(obs_space.shape[0]), int(act_space.shape[0]), float(np.min(act_space.low)), high)


def evaluating(trainer: Any) -> bool:
    """Whether the run evaluates at all (`trainer.eval_every=0` or `eval_episodes=0` switch it off)."""
    return int(trainer.eval_every) > 0 and int(trainer.eval_episodes) > 0


def validate_common(agent_cfg: Any, trainer: Any, replay_size: int | None) -> None:
    """Refuse out-of-range values before any training starts (the ranges live in rlkit2.validation)."""
    validation.validate_agent(agent_cfg)
    validation.validate_trainer(trainer)
    bs = getattr(agent_cfg, "batch_size", None)
    if bs is not None and replay_size is not None and bs > replay_size:
        raise ConfigError(f"agent.batch_size={bs} is larger than the dataset ({replay_size} transitions)")


class MetricAccumulator:
    """Sums tensor metrics between log steps without reading them (no host sync in the loop)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            v = torch.as_tensor(v, dtype=torch.float32).detach()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        """The sums of the current log window: a resume mid-window logs the same averages."""
        return {"sums": {k: v.clone() for k, v in self.sums.items()}, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.count = {k: v.clone() for k, v in state["sums"].items()}, int(state["count"])

    def pop(self, prefix: str = "train/") -> dict[str, float]:
        out = {f"{prefix}{k}": float(v) / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return out


def check_finite(metrics: dict[str, Any]) -> str | None:
    """Name of the first non-finite metric, or None."""
    for k, v in metrics.items():
        if not bool(torch.isfinite(torch.as_tensor(v)).all()):
            return k
    return None


def nonfinite_module(learner: Any) -> str | None:
    """Name of the first of `learner.modules` (a TorchLearner's named modules) holding a NaN/inf parameter.

    A NaN/inf *gradient* with a finite loss shows up here after the optimiser step (Adam turns it into
    NaN parameters). One read of all parameters: done every step under nan_policy=skip (which already
    copies the state each step), otherwise only before a checkpoint is written, so none is ever poisoned.
    """
    modules = getattr(learner, "modules", None)
    if not isinstance(modules, dict):
        return None
    for name, module in modules.items():
        params = [p.detach().reshape(-1) for p in module.parameters()] if isinstance(module, torch.nn.Module) else []
        if params and not bool(torch.isfinite(torch.cat(params)).all()):
            return name
    return None


class UpdateGuard:
    """One learner update under `trainer.nan_policy`; the one NaN/inf mechanism every runner uses.

    "stop": a non-finite metric raises NumericalError naming it, the step and the newest valid checkpoint in
    `ckpt_dir` (good by construction: `check_before_save` refuses to write poisoned parameters). "skip": the
    learner's state is copied before each update and restored when a metric or a parameter comes out
    non-finite, but the `samplers` (replays with a `generator`) are not rewound: learners carry the replay's
    RNG in their state, and rewinding it would redraw the same bad batch forever. `skipped` counts the
    dropped updates (logged as train/skipped_updates, saved in checkpoints).
    """

    def __init__(self, learner: Any, nan_policy: str, ckpt_dir: Path, samplers: Any = ()):
        self.learner, self.nan_policy, self.ckpt_dir = learner, nan_policy, Path(ckpt_dir)
        self.samplers = [s for s in samplers if s is not None and hasattr(s, "generator")]
        self.skipped = 0

    @property
    def skipping(self) -> bool:
        return self.nan_policy == "skip"

    def fault(self, name: str, step: int, described: bool = False) -> None:
        found = ckpt.latest_valid(self.ckpt_dir)
        where = f"last good checkpoint: {found[0]}" if found else "no checkpoint was written yet"
        what = name if described else f"non-finite value in '{name}'"
        raise NumericalError(f"{what} at step {step} ({where}); "
                             "set trainer.nan_policy=skip to drop such updates instead")

    def step(self, step: int) -> dict[str, Any] | None:
        """`learner.step()`'s metrics, or None when the update was dropped (skip)."""
        backup = copy.deepcopy(self.learner.state_dict()) if self.skipping else None
        described = False
        try:
            metrics = self.learner.step()
            bad = check_finite(metrics)
        except NumericalError as e:  # a learner that checks its own loss
            metrics, bad, described = {}, str(e), True
        if bad is None and self.skipping:
            module = nonfinite_module(self.learner)
            bad = None if module is None else f"parameters of '{module}' (a NaN/inf gradient)"
        if bad is None:
            return metrics
        if not self.skipping:
            self.fault(bad, step, described)
        generators = [s.generator.get_state() for s in self.samplers]
        self.learner.load_state_dict(backup)
        for s, g in zip(self.samplers, generators, strict=True):
            s.generator.set_state(g)
        self.skipped += 1
        return None

    def check_before_save(self, step: int) -> None:
        """Never write a checkpoint holding NaN/inf parameters over the last good one."""
        module = nonfinite_module(self.learner)
        if module is not None:
            self.fault(f"parameters of '{module}' (a NaN/inf gradient)", step)


def config_diff(state: dict[str, Any], cfg: Any, error: Exception) -> str:
    """`agent.<key>: checkpoint X, now Y` for each agent option that changed since `state` was written
    (falls back to the first line of `error` when the checkpoint holds no config)."""
    saved = (state.get("config") or {}).get("agent")
    now = OmegaConf.to_container(cfg.agent, resolve=True) if isinstance(cfg.agent, DictConfig) else None
    if isinstance(saved, dict) and isinstance(now, dict):
        diff = [f"agent.{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}"
                for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
        if diff:
            return "; ".join(diff)
    return str(error).strip().splitlines()[0]


def truncate_metrics(logger: Logger, step: int) -> None:
    """Drop the metrics.jsonl rows logged after `step` (a resume from `step` logs them again)."""
    for lg in getattr(logger, "loggers", [logger]):
        if isinstance(lg, JsonlLogger):
            lg.truncate_after(step)


def resolve_resume(resume: str, run_dir: Path) -> Path | None:
    """`resume` -> the checkpoint directory or file to resume from (None: start fresh)."""
    r = str(resume or "").strip()
    if not resuming(r):
        return None  # an earlier run's files were set aside at start (rlkit2.rundir)
    if r.lower() in ("true", "auto", "1"):
        return run_dir / "checkpoints"
    p = Path(r)
    if p.is_file():
        return p
    if (p / "checkpoints").is_dir():
        return p / "checkpoints"
    if p.is_dir():
        return p
    raise ConfigError(f"resume='{resume}': no such run dir or checkpoint")


class ControlTrainer:
    """Runs one control agent (online or offline) for `trainer.total_steps`."""

    def __init__(self, cfg: Any, run_dir: Path, logger: Logger):
        self.cfg, self.run_dir, self.logger = cfg, Path(run_dir), logger
        self.trainer = cfg.trainer
        self.entry = get_agent(cfg.agent.name)
        self.agent_cfg = to_dataclass(cfg.agent, self.entry.config_cls)
        self.seed = int(cfg.seed)
        if self.trainer.distributed:
            distributed.init_from_env(self.trainer.device)
        self.rank = distributed.rank()
        if self.rank != 0:  # only rank 0 logs, evaluates and checkpoints
            self.logger = MultiLogger([])
        # The replay's sampler shares one seed across ranks (each keeps its shard of one global batch);
        # everything that explores (env resets, exploration noise) is seeded per rank.
        seed_everything(self.seed + 1000 * self.rank)
        self.env = make_env(cfg.env, self.seed + 1000 * self.rank)
        self.eval_env = make_env(cfg.env, self.seed + EVAL_SEED_OFFSET)
        self.spec = env_spec(self.env)
        self.score_fn = None
        self.dataset_metadata: Any = None
        self.offline = self.entry.offline
        if self.offline:
            from rlkit2.data import load_offline_dataset, score_function

            dataset = load_offline_dataset(cfg.env, seed=self.seed)
            arrays: dict[str, np.ndarray] = (
                dataset.arrays if hasattr(dataset, "arrays") else dataset)  # type: ignore[assignment]
            self._check_dataset_matches_env(arrays)
            self.replay = TransitionReplay.from_arrays(arrays, seed=self.seed)
            self.dataset_metadata = getattr(dataset, "metadata", None)
            returns = getattr(dataset, "episode_returns", np.zeros(0))
            if self.rank == 0:  # the banner's dataset line: which file, how big, how good its behaviour is
                say(f"[rlkit2] dataset {getattr(dataset, 'source', '?')}: {len(self.replay)} transitions, "
                    f"{len(returns)} episodes, mean episode return "
                    f"{float(np.mean(returns)) if len(returns) else float('nan'):.1f}")
            self.score_fn = score_function(cfg.env, self.dataset_metadata)
        else:
            from rlkit2.data.scores import score_function

            capacity = min(int(getattr(self.agent_cfg, "replay_capacity", 1_000_000)), self.trainer.total_steps)
            validation.check_online_memory(self.agent_cfg, self.spec.obs_dim, self.spec.act_dim, capacity)
            self.replay = TransitionReplay(capacity, self.spec.obs_dim, self.spec.act_dim, seed=self.seed)
            self.score_fn = score_function(cfg.env, None)
        validate_common(self.agent_cfg, self.trainer, len(self.replay) if self.offline else None)
        if str(self.trainer.device) != "cpu":
            # Small-network control runs are CPU-bound here (Python overhead, not FLOPs); rather than
            # silently ignoring the option, say so. The language family honours trainer.device.
            raise ConfigError(f"trainer.device={self.trainer.device}: control agents (online/offline RL) run on "
                              "the CPU in this version; leave trainer.device=cpu")
        self.agent: Agent = build_agent(self.cfg.agent.name, self.agent_cfg, self.spec, self.replay, self.seed)
        if distributed.is_active():  # every rank starts from rank 0's initial parameters
            self.agent.learner.load_state_dict(distributed.broadcast_state(self.agent.learner.state_dict()))
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.step = 0
        self.episode = 0
        self.random_rng = np.random.default_rng(self.seed)
        self.last_eval: dict[str, float] = {}
        self.last_saved_step = -1
        self.guard = UpdateGuard(self.agent.learner, self.trainer.nan_policy, self.ckpt_dir, [self.replay])
        self.acc = MetricAccumulator()  # the current log window's sums; checkpointed (a window can span a resume)

    def _check_dataset_matches_env(self, arrays: dict[str, np.ndarray]) -> None:
        obs, act = arrays["observations"], arrays["actions"]
        if obs.shape[1:] != (self.spec.obs_dim,) or act.shape[1:] != (self.spec.act_dim,):
            raise DataError(f"dataset '{self.cfg.env.dataset or self.cfg.env.id}' has observations {obs.shape[1:]} "
                            f"and actions {act.shape[1:]}, but env '{self.cfg.env.id}' expects "
                            f"({self.spec.obs_dim},) and ({self.spec.act_dim},)")

    # ------------------------------------------------------------------ checkpoints
    def _local_state(self) -> dict[str, Any]:
        """What differs between data-parallel ranks: RNGs, the collected replay, the episode count."""
        explorer = self.agent.explorer
        return {
            "episode": self.episode,
            # Offline: the dataset is re-read on resume; only the sampler's RNG is saved.
            "replay": {"generator": self.replay.generator.get_state()} if self.offline else self.replay.state_dict(),
            "explorer": explorer.state_dict() if explorer is not None and hasattr(explorer, "state_dict") else None,
            "random_rng": self.random_rng.bit_generator.state,
            "metric_acc": self.acc.state_dict(),
            "rng": rng_state(),
        }

    def state(self) -> dict[str, Any]:
        """The checkpoint: shared state once, rank-local state for every rank (one entry when not distributed)."""
        return {
            "step": self.step,
            "skipped_updates": self.guard.skipped,
            "learner": self.agent.learner.state_dict(),
            "ranks": distributed.gather_objects(self._local_state()),
            "agent": self.cfg.agent.name,
            "config": OmegaConf.to_container(self.cfg, resolve=True) if isinstance(self.cfg, DictConfig) else None,
        }

    def save_checkpoint(self) -> Path | None:
        self.guard.check_before_save(self.step)
        state = self.state()  # every rank takes part in gathering the rank-local states
        self.last_saved_step = self.step
        if self.rank != 0:
            return None
        path = ckpt.save(state, ckpt.checkpoint_path(self.ckpt_dir, self.step))
        ckpt.prune(self.ckpt_dir, self.trainer.keep_checkpoints)
        return path

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("agent") not in (None, self.cfg.agent.name):
            raise ConfigError(f"checkpoint is for agent '{state['agent']}', not '{self.cfg.agent.name}'")
        ranks = state["ranks"]
        if len(ranks) != distributed.world_size():
            raise ConfigError(f"checkpoint was written by {len(ranks)} process(es); resume it with as many "
                              f"(this run has {distributed.world_size()})")
        local = ranks[self.rank]
        try:
            self.agent.learner.load_state_dict(state["learner"])
        except (RuntimeError, KeyError, ValueError) as e:  # e.g. agent.hidden changed since the checkpoint
            raise ConfigError(f"the checkpoint does not fit this run's agent ({config_diff(state, self.cfg, e)}); "
                              "resume with the config it was written with, or use a new run dir") from e
        if self.offline:
            self.replay.generator.set_state(local["replay"]["generator"])
        else:
            self.replay.load_state_dict(local["replay"])
        if local.get("explorer") is not None and self.agent.explorer is not None:
            self.agent.explorer.load_state_dict(local["explorer"])  # type: ignore[attr-defined]
        self.random_rng.bit_generator.state = local["random_rng"]
        if "metric_acc" in local:
            self.acc.load_state_dict(local["metric_acc"])
        set_rng_state(local["rng"])
        self.step, self.episode = int(state["step"]), int(local["episode"])
        self.guard.skipped = int(state.get("skipped_updates", 0))
        self.last_saved_step = self.step

    def maybe_resume(self) -> None:
        source = resolve_resume(self.cfg.resume, self.run_dir)
        if source is None:
            return
        found = ckpt.resume_state(source, trust=bool(self.cfg.get("trust_pickle", False)), own_dir=self.ckpt_dir)
        if found is None:
            say(f"[rlkit2] resume: no valid checkpoint in {source}; starting fresh")
            truncate_metrics(self.logger, 0)  # rows a run killed before its first checkpoint logged are redone
            return
        path, state = found
        try:
            self.load_state(state)
        except ConfigError as e:
            raise ConfigError(f"resume from {path}: {e}") from e
        truncate_metrics(self.logger, self.step)
        say(f"[rlkit2] resumed from {path} at step {self.step}")

    # ------------------------------------------------------------------ loop pieces
    def run_eval(self) -> dict[str, float]:
        if self.rank != 0:
            return {}
        self.last_eval = evaluate(self.eval_env, self.agent.policy, self.trainer.eval_episodes,
                                  seed=self.seed + EVAL_SEED_OFFSET, score_fn=self.score_fn)
        # The second reference set (this project's own v5 random/expert returns) where it is known.
        add_v5_score(self.last_eval, self.cfg.env, self.dataset_metadata)
        return self.last_eval

    def _learner_step(self, acc: MetricAccumulator) -> None:
        metrics = self.guard.step(self.step)
        if metrics is not None:
            acc.add(metrics)

    def _progress(self) -> Any:
        return progress(self.trainer.total_steps, self.step, f"{self.cfg.agent.name} {self.cfg.env.id}",
                        enabled=bool(self.trainer.progress) and self.rank == 0)

    # ------------------------------------------------------------------ main loops
    def run(self) -> dict[str, float]:
        self.maybe_resume()
        start_step, t0 = self.step, time.perf_counter()
        bar = self._progress()
        try:
            if self.offline:
                self._run_offline(bar)
            elif int(getattr(self.cfg.env, "num_envs", 1)) > 1:
                self._run_online_vector(bar)
            else:
                self._run_online(bar)
        finally:
            bar.close()
        elapsed = time.perf_counter() - t0
        if self.last_eval or self.rank != 0 or not evaluating(self.trainer):
            final = dict(self.last_eval)
        else:
            final = self.run_eval()
        final["time/seconds"] = elapsed
        final["time/steps_per_s"] = (self.step - start_step) / max(elapsed, 1e-9)
        if self.last_saved_step != self.step:
            self.save_checkpoint()
        if self.rank == 0:
            env = OmegaConf.to_container(self.cfg.env, resolve=True) if isinstance(self.cfg.env, DictConfig) else None
            save_policy(self.agent, self.run_dir / POLICY_FILE, env=env, step=self.step, eval=final)
        distributed.barrier()
        return final

    def _after_step(self, acc: MetricAccumulator, bar: Any, t_log: list[float], extra: dict[str, float],
                    prev: int | None = None) -> None:
        """Log and evaluate when the step count crosses a multiple of log_every / eval_every."""
        s = self.step
        prev = s - 1 if prev is None else prev
        skipping = self.guard.skipping
        if _crossed(prev, s, self.trainer.log_every) and (acc.count or skipping):
            now = time.perf_counter()
            metrics = acc.pop()
            if skipping:
                metrics["train/skipped_updates"] = float(self.guard.skipped)
            metrics["time/steps_per_s"] = self.trainer.log_every / max(now - t_log[0], 1e-9)
            metrics.update(extra)
            t_log[0] = now
            self.logger.write(metrics, s)
            bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in list(metrics.items())[:3]})
        if evaluating(self.trainer) and self.rank == 0 and (
                _crossed(prev, s, self.trainer.eval_every) or s == self.trainer.total_steps):
            ev = self.run_eval()
            self.logger.write(ev, s)
            bar.set_postfix({"eval": f"{ev.get('eval/normalized_score', ev['eval/return']):.3g}"})

    def _run_offline(self, bar: Any) -> None:
        acc, t_log = self.acc, [time.perf_counter()]
        while self.step < self.trainer.total_steps:
            self._learner_step(acc)
            self.step += 1
            bar.update(1)
            self._after_step(acc, bar, t_log, {})
            if self.step % self.trainer.checkpoint_every == 0:
                self.save_checkpoint()

    def _run_online(self, bar: Any) -> None:
        tr, env, explorer = self.trainer, self.env, self.agent.explorer
        assert explorer is not None, f"online agent '{self.cfg.agent.name}' must provide an explorer"
        acc, t_log = self.acc, [time.perf_counter()]
        env_seed = (self.seed + 1000 * self.rank) * 100_003
        obs, _ = env.reset(seed=env_seed + self.episode)
        ep_return, ep_len, checkpoint_due = 0.0, 0, False
        episode_stats: dict[str, float] = {}
        while self.step < tr.total_steps:
            if self.step < tr.learning_starts:
                action = self.random_rng.uniform(self.spec.action_low, self.spec.action_high,
                                                 self.spec.act_dim).astype(np.float32)
            else:
                action = explorer.act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            self.replay.add(obs, action, float(reward), next_obs, bool(terminated))
            obs, ep_return, ep_len = next_obs, ep_return + float(reward), ep_len + 1
            self.step += 1
            bar.update(1)
            if self.step > tr.learning_starts:
                for _ in range(tr.updates_per_step):
                    self._learner_step(acc)
            if self.step % tr.checkpoint_every == 0:
                checkpoint_due = True
            if terminated or truncated:
                episode_stats = {"train/episode_return": ep_return, "train/episode_length": float(ep_len)}
                self.episode += 1
                ep_return, ep_len = 0.0, 0
                obs, _ = env.reset(seed=env_seed + self.episode)
                episode_done = True
            else:
                episode_done = False
            self._after_step(acc, bar, t_log, episode_stats)
            # At an episode boundary, so a resume replays exactly. Data-parallel ranks end episodes at
            # different steps, so they checkpoint in lockstep instead (a resume then restarts their episodes).
            if checkpoint_due and (episode_done or distributed.is_active()):
                self.save_checkpoint()
                checkpoint_due = False

    def _run_online_vector(self, bar: Any) -> None:
        """Online collection from `env.num_envs` environments (Gymnasium Sync/AsyncVectorEnv, `env.vectorization`).

        One batched policy forward serves all envs; each vector step adds num_envs transitions and does
        num_envs * updates_per_step learner updates (the same update-to-data ratio as one env). Checkpoints
        are taken in step order, so a resume restarts the in-progress episodes (exact resume: num_envs=1).
        """
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode

        tr, explorer, n = self.trainer, self.agent.explorer, int(self.cfg.env.num_envs)
        assert explorer is not None, f"online agent '{self.cfg.agent.name}' must provide an explorer"
        env_cfg, base_seed = self.cfg.env, (self.seed + 1000 * self.rank) * 100_003

        def factory(i: int) -> Any:
            return lambda: make_env(env_cfg, None)

        mode = str(getattr(env_cfg, "vectorization", "sync"))
        if mode not in ("sync", "async"):
            raise ConfigError(f"env.vectorization='{mode}': expected 'sync' or 'async'")
        vector_cls = gym.vector.AsyncVectorEnv if mode == "async" else gym.vector.SyncVectorEnv
        venv = vector_cls([factory(i) for i in range(n)], autoreset_mode=AutoresetMode.SAME_STEP)
        try:
            obs, _ = venv.reset(seed=[base_seed + self.step + i for i in range(n)])
            acc, t_log = self.acc, [time.perf_counter()]
            ep_return, ep_len = np.zeros(n), np.zeros(n, dtype=int)
            episode_stats: dict[str, float] = {}
            while self.step < tr.total_steps:
                if self.step < tr.learning_starts:
                    actions = self.random_rng.uniform(self.spec.action_low, self.spec.action_high,
                                                      (n, self.spec.act_dim)).astype(np.float32)
                else:
                    actions = explorer.act(obs)
                next_obs, rewards, terminated, truncated, info = venv.step(actions)
                done = terminated | truncated
                # SAME_STEP autoreset: a finished env's true last observation is in info["final_obs"].
                real_next = next_obs.copy()
                if done.any():
                    for i in np.flatnonzero(done):
                        real_next[i] = info["final_obs"][i]
                self.replay.add_batch({"observations": obs, "actions": actions, "rewards": rewards,
                                       "next_observations": real_next, "terminals": terminated.astype(np.float32)})
                ep_return += rewards
                ep_len += 1
                for i in np.flatnonzero(done):
                    episode_stats = {"train/episode_return": float(ep_return[i]),
                                     "train/episode_length": float(ep_len[i])}
                    ep_return[i], ep_len[i] = 0.0, 0
                    self.episode += 1
                obs = next_obs
                prev = self.step
                self.step += n
                bar.update(n)
                if self.step > tr.learning_starts:
                    for _ in range(n * tr.updates_per_step):
                        self._learner_step(acc)
                self._after_step(acc, bar, t_log, episode_stats, prev=prev)
                if _crossed(prev, self.step, tr.checkpoint_every):
                    self.save_checkpoint()
        finally:
            venv.close()


def _crossed(prev: int, now: int, every: int) -> bool:
    return now // every != prev // every


def run_control(cfg: Any, run_dir: Path, logger: Logger) -> dict[str, float]:
    """Runner for family "control"."""
    return ControlTrainer(cfg, run_dir, logger).run()


register_runner("control", run_control)
