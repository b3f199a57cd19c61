"""POIR learner: BC prior + dynamics ensemble (offline from demos; the model keeps learning online),
the in-distribution score's reference set of expert states and the expert proposals' (state, action) set
(both grown by successful online episodes; the prior optionally fine-tuned on them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from rlkit2.agents.bc.config import BCConfig
from rlkit2.agents.bc.learner import BCLearner
from rlkit2.agents.poir import losses
from rlkit2.agents.poir.arms import ArmStats, build_arms
from rlkit2.agents.poir.config import POIRConfig
from rlkit2.core import ConfigError, EnvSpec
from rlkit2.learners import TorchLearner, draw_on, learner_device, optimizer_step
from rlkit2.networks import EnsembleMLP, Normalizer
from rlkit2.replay import TransitionReplay


def _as_bc(prior: Any) -> BCConfig:
    if isinstance(prior, BCConfig):
        return prior
    node = dict(prior)
    unknown = sorted(set(node) - {f.name for f in dataclasses.fields(BCConfig)})
    if unknown:
        raise ConfigError(f"agent.prior has no option(s) {unknown}")
    return BCConfig(**node)


class POIRLearner(TorchLearner):
    def __init__(self, config: POIRConfig, spec: EnvSpec, replay: TransitionReplay, seed: int = 0):
        super().__init__()
        config.prior = _as_bc(config.prior)
        self.config, self.replay = config, replay
        self.obs_dim, self.act_dim = spec.obs_dim, spec.act_dim
        self.bc = BCLearner(config.prior, spec, replay)
        data = replay.arrays()
        obs = torch.as_tensor(data["observations"])
        delta = torch.as_tensor(data["next_observations"]) - obs
        self.obs_norm = Normalizer(spec.obs_dim, eps=config.obs_std_eps).fit(obs)
        # Floored: a dim the demos never move (cube tilt) would otherwise turn any online change into a huge target.
        self.delta_std = torch.nn.Parameter((delta.std(0) / self.obs_norm.std).clamp_min(config.delta_std_floor),
                                            requires_grad=False)
        act_std = torch.as_tensor(data["actions"]).std(0)
        # per-dim scale of the planner's proposal noise (times a planner setting's noise_std)
        self.noise_unit = act_std if config.noise_relative else torch.ones_like(act_std)
        self.model = EnsembleMLP(config.ensemble_size, spec.obs_dim + spec.act_dim, spec.obs_dim, config.model_hidden)
        self.device = learner_device(replay)  # the BC prior's too: same replay
        self.place(self.model)
        self.model_opt = torch.optim.AdamW(self.model.parameters(), lr=config.model_lr,
                                           weight_decay=config.model_weight_decay)
        dims = list(config.score_dims) or list(range(spec.obs_dim))
        if min(dims) < 0 or max(dims) >= spec.obs_dim:
            raise ConfigError(f"agent.score_dims={dims}: observation has {spec.obs_dim} dims")
        self.score_dims = torch.as_tensor(dims, dtype=torch.long)
        self.reference = self._features(obs)
        # expert proposals: demo states (features) and actions; successful online episodes may join
        self.demo_reference = self.reference
        self.demo_actions = torch.as_tensor(data["actions"])
        self.binary_dims = (self.demo_actions.abs() > 0.999).all(0)  # (act_dim,) bool
        self.success_obs = torch.zeros(0, spec.obs_dim)  # raw states/actions of successful online episodes
        self.success_act = torch.zeros(0, spec.act_dim)
        self.progress = losses.episode_progress(torch.as_tensor(data["terminals"]))
        self.gate_threshold = self._gate_threshold()
        self.online: TransitionReplay | None = None
        # planner settings tried online (arm 0 = the configured planner); the exploring actor sets active_arm
        self.arms = build_arms(config)
        self.arm_stats = ArmStats(len(self.arms))
        self.active_arm = 0
        self.generator = torch.Generator().manual_seed(seed)
        self.generators = {"generator": self.generator}  # saved and restored by TorchLearner
        self.modules = {"model": self.model, "obs_norm": self.obs_norm, "bc_policy": self.bc.policy}
        self.optimizers = {"model": self.model_opt, "bc": self.bc.opt}
        self.online_phase = False
        self._to_device()  # the dataset statistics above were computed on the CPU

    def _to_device(self) -> None:
        """The learner's tensors (normaliser, scales, reference sets) onto its device."""
        d = self.device  # .to() is a no-op for tensors already there
        self.obs_norm.to(d)
        self.delta_std = torch.nn.Parameter(self.delta_std.data.to(d), requires_grad=False)
        for name in ("noise_unit", "score_dims", "reference", "demo_reference", "demo_actions", "binary_dims",
                     "success_obs", "success_act", "progress"):
            setattr(self, name, getattr(self, name).to(d))

    # ------------------------------------------------------------------ pieces the planner uses
    def prior(self, obs: torch.Tensor) -> torch.Tensor:
        return self.bc.policy(obs)

    def _features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.obs_norm(obs).index_select(-1, self.score_dims)

    @torch.no_grad()
    def score(self, obs: torch.Tensor) -> torch.Tensor:
        """In-distribution score (higher = closer to the expert's states), (N,)."""
        if self.config.progress_coef > 0:
            d2, idx = losses.knn_with_index(self._features(obs), self.reference)
            return -d2 + self.config.progress_coef * self.progress[idx]
        return -losses.knn_sq_distance(self._features(obs), self.reference, self.config.score_k)

    @torch.no_grad()
    def expert_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The demo action at the nearest demo state over `score_dims` (N, act_dim)."""
        _, idx = losses.knn_with_index(self._features(obs), self.demo_reference)
        return self.demo_actions[idx]

    @torch.no_grad()
    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ensemble-mean next observation (raw units) and the members' disagreement (mean normalised std)."""
        x = torch.cat([self.obs_norm(obs), act], -1)
        delta = self.model(x) * self.delta_std  # (E, N, D), normalised units
        nxt = obs + delta.mean(0) * self.obs_norm.std
        return nxt, delta.std(0).mean(-1)

    def _gate_threshold(self) -> float:
        q = float(self.config.gate_quantile)
        if q <= 0:
            return -1.0
        ref = self.reference
        d2 = torch.cdist(ref, ref).pow(2) / ref.shape[-1]
        d2.fill_diagonal_(float("inf"))
        return float(torch.quantile(d2.min(-1).values, q))

    def in_distribution(self, obs: torch.Tensor) -> bool:
        if self.gate_threshold < 0:
            return False
        return bool(-self.score(obs)[0] <= self.gate_threshold)

    # ------------------------------------------------------------------ training
    def attach_online(self, replay: TransitionReplay) -> None:
        self.online = replay

    def end_episode(self, observations: np.ndarray, success: bool,
                    actions: np.ndarray | None = None) -> dict[str, float]:
        """After an online episode: the phase is online; the episode's planner arm is credited with its outcome;
        a successful episode's states become 'expert-visited' and, given its `actions` (one per transition,
        `len(observations) - 1` of them), demonstrations. Returns the arm statistics to log."""
        self.online_phase = True
        self.arm_stats.update(self.active_arm, success)
        metrics = {"online/arm": float(self.active_arm), **self.arm_stats.metrics()}
        if not success:
            return metrics
        c, keep = self.config, -int(self.config.max_reference)
        obs = torch.as_tensor(observations, dtype=torch.float32, device=self.device)
        feats = self._features(obs)
        if c.score_add_successful:
            self.reference = torch.cat([self.reference, feats])[keep:]
            self.progress = torch.cat([self.progress, torch.linspace(0.0, 1.0, len(feats), device=self.device)])[keep:]
        if actions is None:
            return metrics
        act = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        if len(act) != len(obs) - 1:
            raise ValueError(f"end_episode: {len(act)} actions for {len(obs)} observations (expected one fewer)")
        if c.snap_binary_actions:
            act = torch.where(self.binary_dims, torch.where(act >= 0, 1.0, -1.0), act)
        if c.proposals_add_successful:
            self.demo_reference = torch.cat([self.demo_reference, feats[:-1]])[keep:]
            self.demo_actions = torch.cat([self.demo_actions, act])[keep:]
        self.success_obs = torch.cat([self.success_obs, obs[:-1]])[keep:]
        self.success_act = torch.cat([self.success_act, act])[keep:]
        return metrics

    def _model_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.config
        n = c.ensemble_size * c.batch_size
        n_online = int(n * c.online_fraction) if self.online is not None and len(self.online) else 0
        b = self.replay.sample(n - n_online)
        obs, act, nxt = b.observations, b.actions, b.next_observations
        if n_online:
            o = self.online.sample(n_online)
            obs, act, nxt = torch.cat([obs, o.observations]), torch.cat([act, o.actions]), \
                torch.cat([nxt, o.next_observations])
            perm = draw_on(self.device, torch.randperm(n, generator=self.generator))
            obs, act, nxt = obs[perm], act[perm], nxt[perm]
        shape = (c.ensemble_size, c.batch_size, -1)
        return obs.reshape(shape), act.reshape(shape), nxt.reshape(shape)

    def model_step(self) -> torch.Tensor:
        obs, act, nxt = self._model_batch()
        target = (nxt - obs) / self.obs_norm.std / self.delta_std
        pred = self.model(torch.cat([self.obs_norm(obs), act], -1))
        loss = losses.dynamics_loss(pred, target)
        optimizer_step(self.model_opt, loss)
        return loss.detach()

    def prior_online_step(self) -> torch.Tensor:
        """One prior update on demos + successful online transitions (`prior_online_fraction` of the batch)."""
        n = int(self.config.prior.batch_size)
        n_succ = int(n * self.config.prior_online_fraction)
        b = self.replay.sample(n - n_succ)
        idx = draw_on(self.device, torch.randint(len(self.success_obs), (n_succ,), generator=self.generator))
        obs = torch.cat([b.observations, self.success_obs[idx]])
        act = torch.cat([b.actions, self.success_act[idx]])
        loss = self.bc.loss(obs, act)
        optimizer_step(self.bc.opt, loss)
        self.bc.num_steps += 1
        return loss.detach()

    def step(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_loss": self.model_step()}
        if not self.online_phase:
            out.update({f"prior_{k}": v for k, v in self.bc.step().items()})
        elif self.config.prior_online_fraction > 0 and len(self.success_obs):
            out["prior_online_loss"] = self.prior_online_step()
        self.num_steps += 1
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(reference=self.reference.clone(),
                     progress=self.progress.clone(), online_phase=self.online_phase,
                     delta_std=self.delta_std.data.clone(),
                     gate_threshold=self.gate_threshold, bc_steps=self.bc.num_steps,
                     demo_reference=self.demo_reference.clone(), demo_actions=self.demo_actions.clone(),
                     success_obs=self.success_obs.clone(), success_act=self.success_act.clone(),
                     arm_stats=self.arm_stats.state_dict(), active_arm=self.active_arm,
                     # dataset statistics the planner reads: a policy rebuilt without the demos needs them
                     noise_unit=self.noise_unit.clone(), binary_dims=self.binary_dims.clone())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.reference = state["reference"].clone()
        self.progress = state["progress"].clone()
        self.online_phase = bool(state["online_phase"])
        self.delta_std.data.copy_(state["delta_std"])
        self.gate_threshold = float(state["gate_threshold"])
        self.bc.num_steps = int(state["bc_steps"])
        if "demo_reference" in state:  # absent in checkpoints from before the expert proposals
            self.demo_reference = state["demo_reference"].clone()
            self.demo_actions = state["demo_actions"].clone()
            self.success_obs = state["success_obs"].clone()
            self.success_act = state["success_act"].clone()
        if "noise_unit" in state:  # absent in checkpoints from before weights-only policy files
            self.noise_unit = state["noise_unit"].clone()
            self.binary_dims = state["binary_dims"].clone()
        if "arm_stats" in state:  # absent in checkpoints from before the planner arms
            self.arm_stats.load_state_dict(state["arm_stats"])
            self.active_arm = int(state["active_arm"])
        self._to_device()  # the tensors above were read on the CPU (rlkit2.checkpoint.load)
