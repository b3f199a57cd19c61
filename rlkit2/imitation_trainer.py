"""The imitation training loop (family "imitation"): BC and POIR on robosuite with a shifted deployment.

1. Demonstrations: `env.dataset` (a robomimic HDF5 file), or, when empty, `env.num_demos` scripted-expert
   demos collected in the *nominal* env into `<run_dir>/demos.hdf5`. They fill a `TransitionReplay`.
2. Offline phase: `trainer.total_steps` learner updates on the demos.
3. Online phase (agents whose config has `online_env_steps > 0`, i.e. POIR): the exploring actor (the
   planner) acts in the *deployment* env; transitions go to an online replay the learner fine-tunes on
   (`learner.attach_online`), `online_updates_per_episode` updates after each episode, and
   `learner.end_episode(observations, success, actions=...)` after each episode (its returned metrics are
   logged with the episode's).
Evaluation (`rlkit2.core.evaluate`): `eval/*` in the deployment env (`env` as configured, shift included)
and, when the shift is not zero, `eval_nominal/*` in the nominal env. `eval/act_ms` is the actor's mean
per-step latency when it measures one. Checkpoints (`rlkit2.checkpoint`) resume either phase; online
checkpoints are taken at episode boundaries, and each episode's reset seed comes from the run seed.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlkit2 import checkpoint as ckpt
from rlkit2.core import ConfigError, DataError, evaluate
from rlkit2.logging import Logger, say
from rlkit2.policy import POLICY_FILE, save_policy
from rlkit2.progress import progress
from rlkit2.registry import Agent, build_agent, get_agent, make_env, register_runner
from rlkit2.replay import TransitionReplay
from rlkit2.seeding import rng_state, seed_everything, set_rng_state
from rlkit2.trainer import (
    MetricAccumulator,
    UpdateGuard,
    env_spec,
    evaluating,
    resolve_resume,
    to_dataclass,
    truncate_metrics,
    validate_common,
)

EVAL_SEED_OFFSET = 10_000
ONLINE_SEED_OFFSET = 20_000


def _node(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)  # type: ignore[arg-type]
    return dict(cfg)


def nominal_env_cfg(env_cfg: Any) -> dict[str, Any]:
    """The same env with every shift set to zero (where demonstrations come from)."""
    from rlkit2.envs.robosuite import ShiftConfig

    node = _node(env_cfg)
    node["shift"] = dataclasses.asdict(ShiftConfig())
    return node


def env_config_object(env_cfg: Any) -> Any:
    from rlkit2.envs.robosuite import as_config

    return as_config(env_cfg)


def is_shifted(env_cfg: Any) -> bool:
    from rlkit2.envs.robosuite import ShiftConfig

    return _node(env_cfg).get("shift", {}) != dataclasses.asdict(ShiftConfig())


def load_demos(env_cfg: Any, run_dir: Path, obs_keys: list[str], *, seed: int,
               progress: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """Demonstration transitions for `env_cfg` (collected by the scripted expert when `dataset` is empty)."""
    from rlkit2.data.robomimic import read_robomimic, to_transitions

    path = str(getattr(env_cfg, "dataset", "") or "")
    num = int(getattr(env_cfg, "num_demos", 0) or 0)
    if not path:
        path = str(run_dir / "demos.hdf5")
        if not Path(path).is_file():
            from rlkit2.data.collect_demos import collect_demos

            if num <= 0:
                raise ConfigError("env.dataset is empty and env.num_demos <= 0: no demonstrations to learn from")
            stats = collect_demos(env_config_object(env_cfg), path, num, seed=seed, progress=progress)
            print(f"[rlkit2] scripted expert: {stats.demos} demos in {stats.attempts} attempts "
                  f"(success rate {stats.success_rate:.2f}, mean length {stats.mean_length:.1f}) -> {path}",
                  flush=True)
    filter_key = str(getattr(env_cfg, "filter_key", "") or "") or None
    ds = read_robomimic(path, obs_keys=obs_keys, filter_key=filter_key, max_demos=num or None)
    return to_transitions(ds, obs_keys), path


class ImitationTrainer:
    """Offline training from demos (+ online fine-tuning for agents that have it), evaluated under shift."""

    def __init__(self, cfg: Any, run_dir: Path, logger: Logger):
        self.cfg, self.run_dir, self.logger = cfg, Path(run_dir), logger
        self.trainer = cfg.trainer
        self.entry = get_agent(cfg.agent.name)
        self.agent_cfg = to_dataclass(cfg.agent, self.entry.config_cls)
        if getattr(cfg.env, "kind", None) != "robosuite":
            raise ConfigError(f"agent '{cfg.agent.name}' (family imitation) needs env.kind=robosuite, "
                              f"got '{getattr(cfg.env, 'kind', None)}'")
        self.seed = int(cfg.seed)
        seed_everything(self.seed)
        self.eval_env = make_env(cfg.env, self.seed + EVAL_SEED_OFFSET)
        self.nominal_env = (make_env(nominal_env_cfg(cfg.env), self.seed + EVAL_SEED_OFFSET)
                            if is_shifted(cfg.env) and bool(getattr(cfg.env, "eval_nominal", True)) else None)
        self.spec = env_spec(self.eval_env)
        arrays, self.demo_path = load_demos(cfg.env, self.run_dir, list(self.eval_env.obs_keys), seed=self.seed,
                                            progress=bool(self.trainer.progress))
        if arrays["observations"].shape[1] != self.spec.obs_dim or arrays["actions"].shape[1] != self.spec.act_dim:
            raise DataError(f"demos {self.demo_path}: observations {arrays['observations'].shape[1:]}, actions "
                            f"{arrays['actions'].shape[1:]}; env '{cfg.env.task}' with obs_keys "
                            f"{list(cfg.env.obs_keys)} expects ({self.spec.obs_dim},), ({self.spec.act_dim},)")
        self.replay = TransitionReplay.from_arrays(arrays, seed=self.seed)
        say(f"[rlkit2] demos {self.demo_path}: {len(self.replay)} transitions, "
            f"{int(arrays['terminals'].sum() + arrays.get('timeouts', np.zeros(0)).sum())} episode ends")
        validate_common(self.agent_cfg, self.trainer, len(self.replay))
        self.agent: Agent = build_agent(self.cfg.agent.name, self.agent_cfg, self.spec, self.replay, self.seed)
        self.online_steps = int(getattr(self.agent_cfg, "online_env_steps", 0) or 0)
        self.online_updates = int(getattr(self.agent_cfg, "online_updates_per_episode", 0) or 0)
        self.online_replay: TransitionReplay | None = None
        self.online_env = None
        if self.online_steps > 0:
            if self.agent.explorer is None or not hasattr(self.agent.learner, "attach_online"):
                raise ConfigError(f"agent '{cfg.agent.name}' sets online_env_steps but has no online fine-tuning")
            self.online_replay = TransitionReplay(self.online_steps, self.spec.obs_dim, self.spec.act_dim,
                                                  seed=self.seed + 1)
            self.agent.learner.attach_online(self.online_replay)  # type: ignore[attr-defined]
            self.online_env = make_env(cfg.env, self.seed + ONLINE_SEED_OFFSET)
        self.ckpt_dir = self.run_dir / "checkpoints"
        # trainer.nan_policy, as in the control trainer (stop: NumericalError naming the last good checkpoint;
        # skip: restore the pre-update learner, keep the samplers moving, count it)
        self.guard = UpdateGuard(self.agent.learner, self.trainer.nan_policy, self.ckpt_dir,
                                 [self.replay, self.online_replay])
        self.acc = MetricAccumulator()  # the current log window's sums (checkpointed)
        self.step = 0  # offline updates, then offline total + online env steps
        self.episode = 0
        self.last_eval: dict[str, float] = {}

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step, "episode": self.episode, "agent": self.cfg.agent.name,
            "learner": self.agent.learner.state_dict(),
            "replay": {"generator": self.replay.generator.get_state()},
            "online_replay": self.online_replay.state_dict() if self.online_replay is not None else None,
            "rng": rng_state(),
            # actors with their own RNG (POIR's planners): without it a resumed online phase plans differently
            "policy": _actor_state(self.agent.policy),
            "explorer": _actor_state(self.agent.explorer),
            "skipped_updates": self.guard.skipped,
            "metric_acc": self.acc.state_dict(),  # a checkpoint inside a log window: same averages after resume
        }

    def save_checkpoint(self) -> Path:
        self.guard.check_before_save(self.step)
        path = ckpt.save(self.state(), ckpt.checkpoint_path(self.ckpt_dir, self.step))
        ckpt.prune(self.ckpt_dir, self.trainer.keep_checkpoints)
        return path

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
        if state.get("agent") != self.cfg.agent.name:
            raise ConfigError(f"checkpoint {path} is for agent '{state.get('agent')}', not '{self.cfg.agent.name}'")
        self.agent.learner.load_state_dict(state["learner"])
        self.replay.generator.set_state(state["replay"]["generator"])
        if self.online_replay is not None and state.get("online_replay") is not None:
            self.online_replay.load_state_dict(state["online_replay"])
        set_rng_state(state["rng"])
        for actor, key in ((self.agent.policy, "policy"), (self.agent.explorer, "explorer")):
            if actor is not None and state.get(key) is not None and hasattr(actor, "load_state_dict"):
                actor.load_state_dict(state[key])
        self.guard.skipped = int(state.get("skipped_updates", 0))
        if "metric_acc" in state:
            self.acc.load_state_dict(state["metric_acc"])
        self.step, self.episode = int(state["step"]), int(state["episode"])
        truncate_metrics(self.logger, self.step)
        say(f"[rlkit2] resumed from {path} at step {self.step}")

    # ------------------------------------------------------------------ evaluation
    def run_eval(self) -> dict[str, float]:
        policy = self.agent.policy
        n, seed = int(self.trainer.eval_episodes), self.seed + EVAL_SEED_OFFSET
        if hasattr(policy, "reset_latency"):
            policy.reset_latency()
        out = evaluate(self.eval_env, policy, n, seed=seed)
        if hasattr(policy, "latency_ms"):
            out.update({f"eval/{k}": v for k, v in policy.latency_ms().items()})
        if self.nominal_env is not None:
            nominal = evaluate(self.nominal_env, policy, n, seed=seed)
            out.update({k.replace("eval/", "eval_nominal/"): v for k, v in nominal.items()})
        self.last_eval = out
        return out

    # ------------------------------------------------------------------ loops
    def _update(self, acc: MetricAccumulator) -> None:
        metrics = self.guard.step(self.step)
        if metrics is not None:
            acc.add(metrics)

    def _log(self, acc: MetricAccumulator, extra: dict[str, float] | None = None) -> None:
        metrics = acc.pop()
        metrics.update(extra or {})
        if self.guard.skipping:
            metrics["train/skipped_updates"] = float(self.guard.skipped)
        if metrics:
            self.logger.write(metrics, self.step)

    def run_offline(self) -> None:
        tr, total = self.trainer, int(self.trainer.total_steps)
        acc = self.acc
        bar = progress(total, min(self.step, total), f"{self.cfg.agent.name} offline", enabled=bool(tr.progress))
        while self.step < total:
            self._update(acc)
            self.step += 1
            bar.update(1)
            if self.step % tr.log_every == 0:
                self._log(acc)
            if evaluating(tr) and (self.step % tr.eval_every == 0 or self.step == total):
                self.logger.write(self.run_eval(), self.step)
            if self.step % tr.checkpoint_every == 0 or self.step == total:
                self.save_checkpoint()
        bar.close()

    def run_online(self) -> None:
        assert self.online_env is not None and self.online_replay is not None and self.agent.explorer is not None
        tr, learner, explorer = self.trainer, self.agent.learner, self.agent.explorer
        start, end = int(tr.total_steps), int(tr.total_steps) + self.online_steps
        acc = self.acc
        bar = progress(self.online_steps, self.step - start, f"{self.cfg.agent.name} online",
                       enabled=bool(tr.progress))
        every = int(tr.eval_every) if evaluating(tr) else end + 1  # no evaluation: never due
        next_eval = start + ((self.step - start) // every + 1) * every
        while self.step < end:
            obs, _ = self.online_env.reset(seed=self.seed * 100_003 + self.episode + ONLINE_SEED_OFFSET)
            explorer.observe_first(obs)
            visited, actions, success, ep_ret = [obs], [], False, 0.0
            while self.step < end:
                action = explorer.act(obs)
                nxt, reward, terminated, truncated, info = self.online_env.step(action)
                self.online_replay.add(obs, action, float(reward), nxt, bool(terminated))
                explorer.observe(action, nxt, float(reward), bool(terminated), bool(truncated))
                obs, ep_ret = nxt, ep_ret + float(reward)
                visited.append(obs)
                actions.append(action)
                success = success or bool(info.get("success", False))
                self.step += 1
                bar.update(1)
                if terminated or truncated:
                    break
            self.episode += 1
            episode_metrics: dict[str, float] = {}
            if hasattr(learner, "end_episode"):  # returns what it wants logged (POIR: its planner-arm statistics)
                episode_metrics = learner.end_episode(np.stack(visited), success, actions=np.stack(actions)) or {}
            for _ in range(self.online_updates):
                self._update(acc)
            self._log(acc, {"online/episode_success": float(success), "online/episode_return": ep_ret,
                            "online/episode": float(self.episode), **episode_metrics})
            if evaluating(tr) and (self.step >= next_eval or self.step >= end):
                self.logger.write(self.run_eval(), self.step)
                next_eval += every
            self.save_checkpoint()  # episode boundary: a resume replays exactly from here
        bar.close()

    def run(self) -> dict[str, float]:
        self.maybe_resume()
        t0 = time.perf_counter()
        offline_eval: dict[str, float] = {}
        if self.step < int(self.trainer.total_steps):
            self.run_offline()
            offline_eval = dict(self.last_eval)
        if self.online_steps > 0:
            if not offline_eval and evaluating(self.trainer):
                offline_eval = self.run_eval()
            self.run_online()
        final = dict(self.last_eval) if self.last_eval or not evaluating(self.trainer) else self.run_eval()
        if self.online_steps > 0:
            final.update({k.replace("eval", "offline_eval", 1): v for k, v in offline_eval.items()})
        final["time/seconds"] = time.perf_counter() - t0
        final["demos/transitions"] = float(len(self.replay))
        # The deployable policy (rlkit2.load_policy): for POIR the planner actor with its prior and models.
        save_policy(self.agent, self.run_dir / POLICY_FILE, env=_node(self.cfg.env), step=self.step, eval=final)
        return final


def _actor_state(actor: Any) -> Any:
    return actor.state_dict() if actor is not None and hasattr(actor, "state_dict") else None


def run_imitation(cfg: Any, run_dir: Path, logger: Logger) -> dict[str, float]:
    """Runner for family "imitation"."""
    return ImitationTrainer(cfg, run_dir, logger).run()


register_runner("imitation", run_imitation)
