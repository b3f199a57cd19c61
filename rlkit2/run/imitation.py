"""Family "imitation" as a phase of the one run loop: BC and POIR on robosuite with a shifted deployment.

1. Demonstrations: `env.dataset` (a robomimic HDF5 file), or, when empty, `env.num_demos` scripted-expert
   demos collected in the *nominal* env into `<run_dir>/demos.hdf5`. They fill a `TransitionReplay`.
2. Offline phase: `trainer.total_steps` learner updates on the demos.
3. Online phase (agents whose config has `online_env_steps > 0`, i.e. POIR): the exploring actor (the
   planner) acts in the *deployment* env; transitions go to an online replay the learner fine-tunes on
   (`learner.attach_online`), `online_updates_per_episode` updates after each episode, and
   `learner.end_episode(observations, success, actions=...)` after each episode (its returned metrics are
   logged with the episode's).
Evaluation (`rlkit2.core.evaluate`): `eval/*` in the deployment env (`env` as configured, shift included)
and, when the shift is not zero, `eval_nominal/*` in the nominal env; with `env.valid_filter_key`,
`valid/action_mse` on the held-out demos (`rlkit2.demo_fit`). `eval/act_ms` is the actor's mean
per-step latency when it measures one. The step counter runs over offline updates, then online env steps
(offline total + env steps); a checkpoint ends the offline stage and every online episode, whose reset seed
comes from the run seed: a resume of either stage reproduces the uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlkit2.config import to_config
from rlkit2.core import ConfigError, DataError, evaluate
from rlkit2.demo_fit import demo_action_error
from rlkit2.logging import Logger, say
from rlkit2.policy import BEST_POLICY_FILE, POLICY_FILE, save_policy
from rlkit2.registry import Agent, build_agent, get_agent, make_env, register_runner
from rlkit2.replay import TransitionReplay
from rlkit2.run.common import env_spec, eval_seed, evaluating, resolve_device, validate_common
from rlkit2.run.loop import Advance, RunLoop
from rlkit2.seeding import seed_everything
from rlkit2.video import EpisodeRecorder, evaluation_env

if TYPE_CHECKING:
    from rlkit2.data.robomimic import Demo

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


@dataclasses.dataclass
class Demos:
    """The demonstrations a run learns from (`transitions`) and the held-out ones it validates on (`valid`)."""

    transitions: dict[str, np.ndarray]
    path: str
    count: int
    valid: list[Demo]


def load_demos(env_cfg: Any, run_dir: Path, obs_keys: list[str], *, seed: int, progress: bool = True,
               object_layout: list[tuple[str, int]] | None = None) -> Demos:
    """Demonstration transitions for `env_cfg` (collected by the scripted expert when `dataset` is empty), and
    the demos under `env.valid_filter_key`'s mask, held out. `object_layout`: the env's "object"
    sub-observations in order; a file that records a different one is refused (its columns would be read
    swapped)."""
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
    valid_key = str(getattr(env_cfg, "valid_filter_key", "") or "") or None
    cap = int(getattr(env_cfg, "max_demos", 0) or 0)
    ds = read_robomimic(path, obs_keys=obs_keys, filter_key=filter_key, max_demos=cap or None,
                        object_layout=object_layout, exclude_key=valid_key)
    valid = read_robomimic(path, obs_keys=obs_keys, filter_key=valid_key).demos if valid_key else []
    return Demos(to_transitions(ds, obs_keys), path, len(ds), valid)


class ImitationPhase:
    """Offline updates on the demos, then (agents with `online_env_steps > 0`: POIR) online episodes in the
    deployment env, each followed by `online_updates_per_episode` updates and `learner.end_episode(...)`."""

    def __init__(self, cfg: Any, run_dir: Path):
        self.cfg, self.trainer = cfg, cfg.trainer
        entry = get_agent(cfg.agent.name)
        self.agent_cfg = to_config(cfg.agent, entry.config_cls)
        if bool(self.trainer.distributed):  # honoured or refused, not ignored
            raise ConfigError(f"agent '{cfg.agent.name}' (family imitation) runs in one process in this version: "
                              "leave trainer.distributed=false")
        for node, where in ((self.agent_cfg, "agent"), (getattr(self.agent_cfg, "prior", None), "agent.prior")):
            image_keys = list(getattr(node, "image_keys", None) or [])
            if image_keys:  # honoured by the BC learner, refused here
                raise ConfigError(f"{where}.image_keys={image_keys}: the imitation runner evaluates in the "
                                  "robosuite env, which renders no camera observations here (use_camera_obs=False); "
                                  "train an image BC policy offline: rlkit2.agents.bc.ImageReplay + make_agent")
        self.device = resolve_device(self.trainer)  # the learner's (through its replays), the planner's
        if getattr(cfg.env, "kind", None) != "robosuite":
            raise ConfigError(f"agent '{cfg.agent.name}' (family imitation) needs env.kind=robosuite, "
                              f"got '{getattr(cfg.env, 'kind', None)}'")
        self.seed = int(cfg.seed)
        seed_everything(self.seed)
        self.eval_env = evaluation_env(cfg.env, eval_seed(self.seed), self.trainer)  # rendering when trainer.video
        self.recorder = self.eval_env if isinstance(self.eval_env, EpisodeRecorder) else None
        base = self.eval_env.unwrapped  # the robosuite env itself (a recorder wraps it)
        self.nominal_env = (make_env(nominal_env_cfg(cfg.env), eval_seed(self.seed))
                            if is_shifted(cfg.env) and bool(getattr(cfg.env, "eval_nominal", True)) else None)
        self.spec = env_spec(self.eval_env)
        layout = getattr(base, "object_layout", None)
        demos = load_demos(cfg.env, Path(run_dir), list(base.obs_keys), seed=self.seed,
                           progress=bool(self.trainer.progress), object_layout=layout() if callable(layout) else None)
        arrays, self.demo_path, self.num_demos, self.valid_demos = (demos.transitions, demos.path, demos.count,
                                                                    demos.valid)
        self.obs_keys = list(base.obs_keys)
        if arrays["observations"].shape[1] != self.spec.obs_dim or arrays["actions"].shape[1] != self.spec.act_dim:
            raise DataError(f"demos {self.demo_path}: observations {arrays['observations'].shape[1:]}, actions "
                            f"{arrays['actions'].shape[1:]}; env '{cfg.env.task}' with obs_keys "
                            f"{list(cfg.env.obs_keys)} expects ({self.spec.obs_dim},), ({self.spec.act_dim},)")
        self.replay = TransitionReplay.from_arrays(arrays, seed=self.seed, device=self.device)
        cap = int(getattr(cfg.env, "max_demos", 0) or 0)
        held = f"; {len(self.valid_demos)} held out (env.valid_filter_key)" if self.valid_demos else ""
        say(f"[rlkit2] demos {self.demo_path}: {self.num_demos} demos{f' (env.max_demos={cap})' if cap else ''}, "
            f"{len(self.replay)} transitions{held}")
        validate_common(self.agent_cfg, self.trainer, None)  # batches are drawn with replacement: any size works
        if self.valid_demos and not evaluating(self.trainer):
            raise ConfigError(f"env.valid_filter_key={cfg.env.valid_filter_key} validates at every evaluation, but "
                              "evaluation is off (trainer.eval_every or trainer.eval_episodes is 0); to hold demos "
                              "out without validating, train on a mask: env.filter_key=train")
        if str(getattr(self.trainer, "keep_best", "") or "").startswith("valid/") and not self.valid_demos:
            raise ConfigError(f"trainer.keep_best={self.trainer.keep_best} needs held-out demos: set "
                              "env.valid_filter_key (e.g. valid, a mask of env.dataset's)")
        self.agent: Agent = build_agent(str(cfg.agent.name), self.agent_cfg, self.spec, self.replay, self.seed)
        self.offline_total = int(self.trainer.total_steps)
        self.online_steps = int(getattr(self.agent_cfg, "online_env_steps", 0) or 0)
        self.online_updates = int(getattr(self.agent_cfg, "online_updates_per_episode", 0) or 0)
        self.online_replay: TransitionReplay | None = None
        self.online_env = None
        if self.online_steps > 0:
            if self.agent.explorer is None or not hasattr(self.agent.learner, "attach_online"):
                raise ConfigError(f"agent '{cfg.agent.name}' sets online_env_steps but has no online fine-tuning")
            self.online_replay = TransitionReplay(self.online_steps, self.spec.obs_dim, self.spec.act_dim,
                                                  seed=self.seed + 1, device=self.device)
            self.agent.learner.attach_online(self.online_replay)  # type: ignore[attr-defined]
            self.online_env = make_env(cfg.env, self.seed + ONLINE_SEED_OFFSET)
        self.label = f"{cfg.agent.name} {cfg.env.task}"
        online = f", then {self.online_steps} online env steps (agent.online_env_steps)" if self.online_steps else ""
        self.unit = "offline updates on the demos" + online
        self.step, self.total = 0, self.offline_total + self.online_steps
        self.episode = 0
        self.last_eval: dict[str, float] = {}
        self.offline_eval: dict[str, float] | None = None  # the policy before fine-tuning (online agents)
        self.next_eval: int | None = None

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        policy = self.agent.policy
        n, seed = int(self.trainer.eval_episodes), eval_seed(self.seed)
        if hasattr(policy, "reset_latency"):
            policy.reset_latency()
        out = evaluate(self.eval_env, policy, n, seed=seed)
        if hasattr(policy, "latency_ms"):
            out.update({f"eval/{k}": v for k, v in policy.latency_ms().items()})
        if self.nominal_env is not None:
            nominal = evaluate(self.nominal_env, policy, n, seed=seed)
            out.update({k.replace("eval/", "eval_nominal/"): v for k, v in nominal.items()})
        if self.valid_demos:
            out["valid/action_mse"] = self._validate(policy)
        self.last_eval = out
        return out

    def _validate(self, policy: Any) -> float:
        """The open-loop action error on the held-out demos, leaving the policy's own random streams (the
        planner's, a sampling actor's) where they were: turning validation on moves no later evaluation."""
        saved = _actor_state(policy)
        gen = getattr(policy, "generator", None)
        gen_state = gen.get_state() if isinstance(gen, torch.Generator) else None
        try:
            return float(demo_action_error(policy, self.valid_demos, self.obs_keys)["mse"])
        finally:
            if saved is not None:
                policy.load_state_dict(saved)
            if isinstance(gen, torch.Generator) and gen_state is not None:
                gen.set_state(gen_state)

    # ------------------------------------------------------------------ stages
    def advance(self, update: Callable[[], None]) -> Advance:
        if self.step < self.offline_total:
            update()
            self.step += 1
            every = int(self.trainer.eval_every)
            due = (every > 0 and self.step % every == 0) or self.step == self.offline_total
            return Advance(self.step - 1, eval_now=due, checkpoint_now=self.step == self.offline_total)
        return self._online_episode(update)

    def _online_episode(self, update: Callable[[], None]) -> Advance:
        assert self.online_env is not None and self.online_replay is not None and self.agent.explorer is not None
        tr, learner, explorer = self.trainer, self.agent.learner, self.agent.explorer
        start, end = self.offline_total, self.total
        if self.offline_eval is None and self.step > start:  # resumed mid-stage without a record of the policy
            self.offline_eval = {}  # before it (an older checkpoint, another env): that policy is gone
        if self.offline_eval is None:  # entering the online stage (fresh, or resumed at its start): the policy
            self.offline_eval = dict(self.last_eval) if self.last_eval or not evaluating(tr) else self.evaluate()
        if self.next_eval is None:
            every = int(tr.eval_every) if evaluating(tr) else end + 1  # no evaluation: never due
            self.next_eval = start + ((self.step - start) // every + 1) * every
        prev = self.step
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
            if terminated or truncated:
                break
        self.episode += 1
        episode_metrics: dict[str, float] = {}
        if hasattr(learner, "end_episode"):  # returns what it wants logged (POIR: its planner-arm statistics)
            episode_metrics = learner.end_episode(np.stack(visited), success, actions=np.stack(actions)) or {}
        for _ in range(self.online_updates):
            update()
        due = self.step >= self.next_eval or self.step >= end
        if due:
            self.next_eval += int(tr.eval_every) if evaluating(tr) else end + 1
        extra = {"online/episode_success": float(success), "online/episode_return": ep_ret,
                 "online/episode": float(self.episode), **episode_metrics}
        return Advance(prev, extra=extra, log_now=True, eval_now=due, checkpoint_now=True)

    # ------------------------------------------------------------------ state and the end
    def local_state_dict(self) -> dict[str, Any]:
        return {"episode": self.episode, "replay": {"generator": self.replay.generator.get_state()},
                "online_replay": self.online_replay.state_dict() if self.online_replay is not None else None,
                # actors with their own RNG (POIR's planners): without it a resumed online stage plans differently
                "policy": _actor_state(self.agent.policy), "explorer": _actor_state(self.agent.explorer),
                # the offline policy's evaluation, reported beside the fine-tuned one's: a resume does not redo it
                "last_eval": dict(self.last_eval), "offline_eval": self.offline_eval,
                "eval_setting": self._eval_setting()}

    def load_local_state_dict(self, local: dict[str, Any]) -> None:
        self.replay.generator.set_state(local["replay"]["generator"])
        if self.online_replay is not None and local.get("online_replay") is not None:
            self.online_replay.load_state_dict(local["online_replay"])
        for actor, key in ((self.agent.policy, "policy"), (self.agent.explorer, "explorer")):
            if actor is not None and local.get(key) is not None and hasattr(actor, "load_state_dict"):
                actor.load_state_dict(local[key])
        self.episode = int(local["episode"])
        kept = local.get("offline_eval") or local.get("last_eval")
        if local.get("eval_setting") == self._eval_setting():  # not another run's, made in another setting (init_from)
            self.last_eval = {str(k): float(v) for k, v in (local.get("last_eval") or {}).items()}
            if local.get("offline_eval") is not None:
                self.offline_eval = {str(k): float(v) for k, v in local["offline_eval"].items()}
        elif kept and self.online_steps > 0:
            say("[rlkit2] the checkpoint's evaluations were made in another setting (env, agent or "
                "trainer.eval_episodes): the offline policy is evaluated again here, or not reported once "
                "fine-tuning has begun")

    def _eval_setting(self) -> str:
        """What an evaluation's numbers depend on besides the weights: the env (shift included), the agent's
        settings (a planner's, an evaluation mode) and the episodes. A run's own resume cannot change the first two."""
        return json.dumps({"env": _node(self.cfg.env), "agent": _node(self.cfg.agent),  # e.g. the planner's
                           "episodes": int(self.trainer.eval_episodes), "seed": self.seed}, sort_keys=True, default=str)

    def finish(self, final: dict[str, float], run_dir: Path) -> dict[str, float]:
        if self.online_steps > 0 and self.offline_eval:  # eval/*, eval_nominal/*, valid/* before fine-tuning
            final.update({f"offline_{k}": v for k, v in self.offline_eval.items()})
        final["demos/transitions"] = float(len(self.replay))
        self.save_policy(run_dir, final)
        return final

    def save_policy(self, run_dir: Path, metrics: dict[str, float], *, best: bool = False) -> Path:
        # The deployable policy (rlkit2.load_policy): for POIR the planner actor with its prior and models.
        return save_policy(self.agent, run_dir / (BEST_POLICY_FILE if best else POLICY_FILE), env=_node(self.cfg.env),
                           step=self.step, eval=metrics)


def _actor_state(actor: Any) -> Any:
    return actor.state_dict() if actor is not None and hasattr(actor, "state_dict") else None


def run_imitation(cfg: Any, run_dir: Path, logger: Logger) -> dict[str, float]:
    """Runner for family "imitation"."""
    phase = ImitationPhase(cfg, run_dir)
    return RunLoop(cfg, run_dir, logger, phase, phase.agent.learner, [phase.replay, phase.online_replay]).run()


register_runner("imitation", run_imitation)
