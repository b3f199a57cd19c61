"""Family "control": online RL (TD3, SAC) and offline RL (TD3+BC, IQL, CQL, Q-sarsa, offline BC) as phases of
the one run loop.

Offline: `step` counts learner updates on a fixed dataset. Online: `step` counts env steps; an exploring
actor collects into the replay and, after `learning_starts` random steps, `updates_per_step` learner updates
follow each env step. A single env checkpoints only at episode boundaries (each episode's reset seed comes
from the run seed and the episode index), so a resumed run reproduces the uninterrupted one exactly; with
`env.num_envs > 1` checkpoints follow the step grid and a resume restarts the episodes in progress.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from rlkit2 import distributed, validation
from rlkit2.config import to_config
from rlkit2.core import ConfigError, DataError, evaluate
from rlkit2.data.scores import add_v5_score
from rlkit2.logging import Logger, say
from rlkit2.policy import BEST_POLICY_FILE, POLICY_FILE, save_policy
from rlkit2.registry import Agent, build_agent, get_agent, make_env, register_runner
from rlkit2.replay import TransitionReplay
from rlkit2.run.common import env_spec, eval_seed, evaluating, resolve_device, validate_common
from rlkit2.run.loop import Advance, RunLoop
from rlkit2.rundir import REFERENCES_FILE
from rlkit2.seeding import seed_everything
from rlkit2.video import EpisodeRecorder, evaluation_env


class ControlSetup:
    """Envs, replay (the dataset, or an empty ring) and agent of one control run, on this rank."""

    def __init__(self, cfg: Any):
        self.cfg, tr = cfg, cfg.trainer
        entry = get_agent(cfg.agent.name)
        self.agent_cfg = to_config(cfg.agent, entry.config_cls)
        self.seed = int(cfg.seed)
        # networks, optimiser state and replay batches live on this device (the replay carries it to the
        # builder); the replay's storage stays in host memory
        self.device = resolve_device(tr)
        if tr.distributed:
            distributed.init_from_env(tr.device)
        self.rank = distributed.rank()
        # The replay's sampler shares one seed across ranks (each keeps its shard of one global batch);
        # everything that explores (env resets, exploration noise) is seeded per rank.
        seed_everything(self.seed + 1000 * self.rank)
        if getattr(cfg.env, "kind", None) == "robosuite":
            from rlkit2.envs.robosuite import refuse_imitation_settings

            refuse_imitation_settings(cfg.env, str(cfg.agent.name), offline=entry.offline)
        self.env = make_env(cfg.env, self.seed + 1000 * self.rank)
        self.eval_env = evaluation_env(cfg.env, eval_seed(self.seed), tr)  # rendering when trainer.video
        self.spec = env_spec(self.env)
        self.offline = entry.offline
        self.dataset_metadata: Any = None
        self.dataset_return: float | None = None  # offline: the mean episode return of the dataset
        if self.offline:
            self.replay = self._dataset_replay()
        else:
            from rlkit2.data.scores import score_function

            capacity = min(int(getattr(self.agent_cfg, "replay_capacity", 1_000_000)), int(tr.total_steps))
            validation.check_online_memory(self.agent_cfg, self.spec.obs_dim, self.spec.act_dim, capacity)
            self.replay = TransitionReplay(capacity, self.spec.obs_dim, self.spec.act_dim, seed=self.seed,
                                           device=self.device)
            self.score_fn = score_function(cfg.env, None)
        validate_common(self.agent_cfg, tr, len(self.replay) if self.offline else None)
        self.agent: Agent = build_agent(str(cfg.agent.name), self.agent_cfg, self.spec, self.replay, self.seed)
        if distributed.is_active():  # every rank starts from rank 0's initial parameters
            self.agent.learner.load_state_dict(distributed.broadcast_state(self.agent.learner.state_dict()))

    def _dataset_replay(self) -> TransitionReplay:
        from rlkit2.data import load_offline_dataset, score_function

        dataset = load_offline_dataset(self.cfg.env, seed=self.seed)
        arrays: dict[str, np.ndarray] = dataset.arrays
        obs, act = arrays["observations"], arrays["actions"]
        if obs.shape[1:] != (self.spec.obs_dim,) or act.shape[1:] != (self.spec.act_dim,):
            raise DataError(f"dataset '{self.cfg.env.dataset or self.cfg.env.id}' has observations {obs.shape[1:]} "
                            f"and actions {act.shape[1:]}, but env '{self.cfg.env.id}' expects "
                            f"({self.spec.obs_dim},) and ({self.spec.act_dim},)")
        replay = TransitionReplay.from_arrays(arrays, seed=self.seed, device=self.device)
        self.dataset_metadata = dataset.metadata
        returns = dataset.episode_returns
        self.dataset_return = float(np.mean(returns)) if len(returns) else None
        if self.rank == 0:  # the banner's dataset line: which file, how big, how good its behaviour is
            mean = self.dataset_return if self.dataset_return is not None else float("nan")
            say(f"[rlkit2] dataset {dataset.source}: {len(replay)} transitions, {len(returns)} episodes, "
                f"mean episode return {mean:.1f}")
        self.score_fn = score_function(self.cfg.env, self.dataset_metadata)
        return replay


class ControlPhase:
    """What the offline and online control phases share: evaluation, the explorer and RNG state, the policy."""

    def __init__(self, setup: ControlSetup):
        self.s, self.cfg = setup, setup.cfg
        self.trainer = setup.cfg.trainer
        self.label = f"{self.cfg.agent.name} {self.cfg.env.id}"
        self.step, self.total = 0, int(self.trainer.total_steps)
        self.episode = 0
        self.random_rng = np.random.default_rng(setup.seed)
        self.recorder = setup.eval_env if isinstance(setup.eval_env, EpisodeRecorder) else None

    def evaluate(self) -> dict[str, float]:
        s = self.s
        out = evaluate(s.eval_env, s.agent.policy, int(self.trainer.eval_episodes), seed=eval_seed(s.seed),
                       score_fn=s.score_fn)
        add_v5_score(out, self.cfg.env, s.dataset_metadata)  # this project's own v5 reference set, where known
        return out

    def local_state_dict(self) -> dict[str, Any]:
        """What differs between data-parallel ranks: the collected replay, the explorer's noise, the episode count."""
        s, explorer = self.s, self.s.agent.explorer
        return {
            "episode": self.episode,
            # Offline: the dataset is re-read on resume; only the sampler's RNG is saved.
            "replay": {"generator": s.replay.generator.get_state()} if s.offline else s.replay.state_dict(),
            "explorer": explorer.state_dict() if explorer is not None and hasattr(explorer, "state_dict") else None,
            "random_rng": self.random_rng.bit_generator.state,
        }

    def load_local_state_dict(self, local: dict[str, Any]) -> None:
        s = self.s
        if s.offline:
            s.replay.generator.set_state(local["replay"]["generator"])
        else:
            s.replay.load_state_dict(local["replay"])
        if local.get("explorer") is not None and s.agent.explorer is not None:
            s.agent.explorer.load_state_dict(local["explorer"])  # type: ignore[attr-defined]
        self.random_rng.bit_generator.state = local["random_rng"]
        self.episode = int(local["episode"])

    def save_policy(self, run_dir: Path, metrics: dict[str, float], *, best: bool = False) -> Path:
        env = OmegaConf.to_container(self.cfg.env, resolve=True) if isinstance(self.cfg.env, DictConfig) else None
        return save_policy(self.s.agent, run_dir / (BEST_POLICY_FILE if best else POLICY_FILE), env=env,
                           step=self.step, eval=metrics)

    def finish(self, final: dict[str, float], run_dir: Path) -> dict[str, float]:
        self.save_policy(run_dir, final)
        return final

    def random_actions(self, n: int | None = None) -> np.ndarray:
        spec = self.s.spec
        shape = spec.act_dim if n is None else (n, spec.act_dim)
        return self.random_rng.uniform(spec.action_low, spec.action_high, shape).astype(np.float32)


class OfflinePhase(ControlPhase):
    """One learner update per step on the dataset."""

    unit = "learner updates"

    def advance(self, update: Callable[[], None]) -> Advance:
        update()
        self.step += 1
        return Advance(self.step - 1)

    def finish(self, final: dict[str, float], run_dir: Path) -> dict[str, float]:
        """Also the levels that make the score mean something (zero action, behaviour policy, the dataset's own
        episodes), written to `references.json`: the learning curve draws them and the run's last lines print them."""
        import json

        from rlkit2.checkpoint import atomic_write_bytes
        from rlkit2.data.references import run_references

        if evaluating(self.trainer):
            s = self.s
            refs = run_references(s.eval_env, self.cfg.env, s.dataset_metadata, int(self.trainer.eval_episodes),
                                  eval_seed(s.seed), dataset_return=s.dataset_return)
            atomic_write_bytes(run_dir / REFERENCES_FILE, (json.dumps(refs, indent=1) + "\n").encode())
        return super().finish(final, run_dir)


class OnlinePhase(ControlPhase):
    """One env step per step (random actions until `learning_starts`), then `updates_per_step` updates."""

    unit = "env steps"

    def __init__(self, setup: ControlSetup):
        super().__init__(setup)
        if setup.agent.explorer is None:
            raise ConfigError(f"online agent '{self.cfg.agent.name}' must provide an explorer")
        self.env_seed = (setup.seed + 1000 * setup.rank) * 100_003
        self.obs: Any = None
        self.ep_return, self.ep_len = 0.0, 0
        self.episode_stats: dict[str, float] = {}

    def advance(self, update: Callable[[], None]) -> Advance:
        tr, env, explorer = self.trainer, self.s.env, self.s.agent.explorer
        assert explorer is not None
        if self.obs is None:  # the first step, fresh or resumed: a checkpoint is always at an episode start
            self.obs, _ = env.reset(seed=self.env_seed + self.episode)
        action = self.random_actions() if self.step < tr.learning_starts else explorer.act(self.obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        self.s.replay.add(self.obs, action, float(reward), next_obs, bool(terminated))
        self.obs, self.ep_return, self.ep_len = next_obs, self.ep_return + float(reward), self.ep_len + 1
        self.step += 1
        if self.step > tr.learning_starts:
            for _ in range(int(tr.updates_per_step)):
                update()
        done = bool(terminated or truncated)
        if done:
            self.episode_stats = {"train/episode_return": self.ep_return, "train/episode_length": float(self.ep_len)}
            self.episode += 1
            self.ep_return, self.ep_len = 0.0, 0
            self.obs, _ = env.reset(seed=self.env_seed + self.episode)
        # Data-parallel ranks end episodes at different steps, so they checkpoint in lockstep instead
        # (a resume then restarts their episodes).
        return Advance(self.step - 1, boundary=done or distributed.is_active(), extra=self.episode_stats)


class VectorOnlinePhase(ControlPhase):
    """Online collection from `env.num_envs` envs (Gymnasium Sync/AsyncVectorEnv, `env.vectorization`): one
    batched policy forward serves all envs; a step adds num_envs transitions and does num_envs *
    updates_per_step updates (the update-to-data ratio of one env). Checkpoints follow the step grid, so a
    resume restarts the episodes in progress (exact resume: num_envs=1)."""

    unit = "env steps (all envs together)"

    def __init__(self, setup: ControlSetup):
        super().__init__(setup)
        import gymnasium as gym
        from gymnasium.vector import AutoresetMode

        if setup.agent.explorer is None:
            raise ConfigError(f"online agent '{self.cfg.agent.name}' must provide an explorer")
        env_cfg = self.cfg.env
        self.n = int(env_cfg.num_envs)
        mode = str(getattr(env_cfg, "vectorization", "sync"))
        if mode not in ("sync", "async"):
            raise ConfigError(f"env.vectorization='{mode}': expected 'sync' or 'async'")
        vector_cls = gym.vector.AsyncVectorEnv if mode == "async" else gym.vector.SyncVectorEnv
        self.venv = vector_cls([lambda: make_env(env_cfg, None) for _ in range(self.n)],
                               autoreset_mode=AutoresetMode.SAME_STEP)
        self.base_seed = (setup.seed + 1000 * setup.rank) * 100_003
        self.obs: Any = None
        self.ep_return, self.ep_len = np.zeros(self.n), np.zeros(self.n, dtype=int)
        self.episode_stats: dict[str, float] = {}

    def advance(self, update: Callable[[], None]) -> Advance:
        tr, explorer, n = self.trainer, self.s.agent.explorer, self.n
        assert explorer is not None
        if self.obs is None:
            self.obs, _ = self.venv.reset(seed=[self.base_seed + self.step + i for i in range(n)])
        actions = self.random_actions(n) if self.step < tr.learning_starts else explorer.act(self.obs)
        next_obs, rewards, terminated, truncated, info = self.venv.step(actions)
        done = terminated | truncated
        real_next = next_obs.copy()  # SAME_STEP autoreset: a finished env's true last observation is in info
        for i in np.flatnonzero(done):
            real_next[i] = info["final_obs"][i]
        self.s.replay.add_batch({"observations": self.obs, "actions": actions, "rewards": rewards,
                                 "next_observations": real_next, "terminals": terminated.astype(np.float32)})
        self.ep_return += rewards
        self.ep_len += 1
        for i in np.flatnonzero(done):
            self.episode_stats = {"train/episode_return": float(self.ep_return[i]),
                                  "train/episode_length": float(self.ep_len[i])}
            self.ep_return[i], self.ep_len[i] = 0.0, 0
            self.episode += 1
        self.obs = next_obs
        prev = self.step
        self.step += n
        if self.step > tr.learning_starts:
            for _ in range(n * int(tr.updates_per_step)):
                update()
        return Advance(prev, boundary=True, extra=self.episode_stats)

    def close(self) -> None:
        self.venv.close()


def control_loop(cfg: Any, run_dir: Path, logger: Logger,
                 on_evaluate: Callable[[int, dict[str, float]], None] | None = None) -> RunLoop:
    """The run loop of one control run (built, not started)."""
    setup = ControlSetup(cfg)
    phase: ControlPhase
    if setup.offline:
        phase = OfflinePhase(setup)
    elif int(getattr(cfg.env, "num_envs", 1)) > 1:
        phase = VectorOnlinePhase(setup)
    else:
        phase = OnlinePhase(setup)
    return RunLoop(cfg, run_dir, logger, phase, setup.agent.learner, [setup.replay], on_evaluate=on_evaluate)


def run_control(cfg: Any, run_dir: Path, logger: Logger,
                on_evaluate: Callable[[int, dict[str, float], Agent], None] | None = None) -> dict[str, float]:
    """Runner for family "control". `on_evaluate(step, metrics, agent)` after every evaluation (the dataset
    generator snapshots its behaviour policy there)."""
    loop = control_loop(cfg, run_dir, logger)
    if on_evaluate is not None:
        agent = loop.phase.s.agent  # type: ignore[attr-defined]
        loop.on_evaluate = lambda step, metrics: on_evaluate(step, metrics, agent)
    return loop.run()


register_runner("control", run_control)
