"""Family "lm" (ppo_lm, warp, jbond) as a phase of the one run loop: `step` counts RL iterations.

    rlkit2-train experiment=rlhf_toy
    rlkit2-train agent=ppo_lm env=text_synthetic reward=entailment reward.model=/path/to/nli

The text env with its reward and the agent's learner are built here; each `advance()` is one RL iteration
(`learner.step()`: rollouts, rewards, updates). Evaluation: `rlkit2.core.evaluate` with the greedy actor
(`eval/return`, `eval/success_rate`) plus the batched task metrics (`eval/true_consistency`, `eval/kl`, ...).
Under torchrun each rank rolls out its own prompts (its env stream is rank-local state); gradients are
averaged in `optimizer_step`. The policy is saved as a plain Hugging Face folder (`<run_dir>/policy`).
`load_phase` rebuilds a run's phase from one of its checkpoints (or its composed config), so a study evaluates
intermediate policies with the run's own env, reward and reference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rlkit2 import checkpoint as ckpt
from rlkit2 import distributed
from rlkit2.core import ConfigError, evaluate
from rlkit2.lm.generation import LMActor, prompts_are_chat, response_logprobs
from rlkit2.logging import Logger
from rlkit2.registry import get_agent, register_runner
from rlkit2.run.common import config_diff, crossed, eval_seed, validate_common
from rlkit2.run.loop import Advance, RunLoop, upgrade
from rlkit2.seeding import seed_everything


@torch.no_grad()
def score_policy(learner: Any, env: Any, documents: list[str], greedy: bool = False
                 ) -> dict[str, float]:
    """Reward, task metrics (exact checker), KL to the reference and length on fixed documents."""
    c = learner.config
    actor = LMActor(learner.policy, learner.tokenizer, c.generation, greedy=greedy, chat=prompts_are_chat(env))
    out: dict[str, list[float]] = {}
    texts_all: list[str] = []
    for i in range(0, len(documents), 64):
        docs = documents[i : i + 64]
        ro = actor.rollout([env.format_prompt(d) for d in docs])
        texts_all += ro.texts
        sup = actor.suppress_ids
        lp = response_logprobs(learner.policy.lm, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask,
                               c.generation.temperature, suppress_ids=sup)["logprobs"]
        rp = response_logprobs(learner.reference, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask,
                               c.generation.temperature, suppress_ids=sup)["logprobs"]
        out.setdefault("kl", []).extend(((lp - rp) * ro.response_mask).sum(1).tolist())
        out.setdefault("reward", []).extend(env.score(docs, ro.texts).tolist())
        out.setdefault("tokens", []).extend(ro.response_mask.sum(1).tolist())
    res = {k: sum(v) / max(len(v), 1) for k, v in out.items()}
    res.update(env.metrics(documents, texts_all))
    return res




class LMPhase:
    def __init__(self, cfg: DictConfig):
        from rlkit2.config import to_config
        from rlkit2.envs.text import make_text_env

        self.cfg, self.trainer = cfg, cfg.trainer
        self.seed = int(cfg.seed)
        if bool(getattr(self.trainer, "video", False)):  # honoured or refused: text has no frames
            raise ConfigError(f"trainer.video=true: agent '{cfg.agent.name}' generates text, which has no frames to "
                              "record; leave trainer.video=false")
        if self.trainer.distributed:
            distributed.init_from_env(str(self.trainer.device))
        self.rank = distributed.rank()
        seed_everything(self.seed + 1000 * self.rank)
        entry = get_agent(str(cfg.agent.name))  # ppo_lm, warp, jbond: each brings its config and builder
        self.agent_cfg = to_config(cfg.agent, entry.config_cls)
        validate_common(self.agent_cfg, self.trainer, None)
        if self.trainer.device != "cpu":
            self.agent_cfg.model.device = self.trainer.device
        env_cfg = cfg.env
        if cfg.get("reward") is not None:  # the top-level `reward=` group wins over env.reward
            env_cfg = OmegaConf.merge(cfg.env, {"reward": cfg.reward})
        self.env = make_text_env(env_cfg, self.seed + 1000 * self.rank)
        self.eval_env = make_text_env(env_cfg, self.seed, reward_fn=self.env.reward_fn, evaluation=True)
        self.learner = entry.builder(self.agent_cfg, self.env, seed=self.seed).learner
        if distributed.is_active():  # every rank starts from rank 0's parameters
            self.learner.policy.load_state_dict(distributed.broadcast_state(self.learner.policy.state_dict()))
            self.learner.reference.load_state_dict(distributed.broadcast_state(self.learner.reference.state_dict()))
        self.eval_docs = self.eval_env.sample_documents(max(int(self.trainer.eval_episodes), 1))
        self.label, self.unit = str(cfg.agent.name), "RL iterations"
        self.step, self.total = 0, int(self.trainer.total_steps)

    def advance(self, update: Callable[[], None]) -> Advance:
        update()
        self.step += 1
        extra: dict[str, float] = {}
        if crossed(self.step - 1, self.step, int(self.trainer.log_every)):  # the task's metrics on this rollout
            batch = self.learner.replay.all()
            extra = {f"rollout/{k}": v for k, v in self.env.metrics(batch.documents, batch.responses).items()}
        return Advance(self.step - 1, extra=extra)

    def evaluate(self) -> dict[str, float]:
        greedy = LMActor(self.learner.policy, self.learner.tokenizer, self.agent_cfg.generation, greedy=True,
                         chat=prompts_are_chat(self.eval_env))
        m = evaluate(self.eval_env, greedy, min(int(self.trainer.eval_episodes), 16), seed=eval_seed(self.seed))
        m.update({f"eval/{k}": v for k, v in score_policy(self.learner, self.eval_env, self.eval_docs).items()})
        return m

    def local_state_dict(self) -> dict[str, Any]:
        return {"env": self.env.state_dict() if hasattr(self.env, "state_dict") else None}  # this rank's prompts

    def load_local_state_dict(self, local: dict[str, Any]) -> None:
        if local.get("env") is not None and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(local["env"])

    def load_checkpoint(self, path: str | Path, state: dict[str, Any] | None = None) -> int:
        """Load the learner's state (and step) of a checkpoint of this run, or of a run with the same agent
        config; returns its step. For evaluating policies: the phase's env streams stay where they are (unless
        the learner's own state holds its prompt stream, as jbond's does)."""
        state = upgrade(state if state is not None else ckpt.load(path))
        if state.get("agent") != str(self.cfg.agent.name):
            raise ConfigError(f"{path}: a checkpoint of agent '{state.get('agent')}', not '{self.cfg.agent.name}'")
        try:
            self.learner.load_state_dict(state["learner"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise ConfigError(f"{path} does not fit this run's agent ({config_diff(state, self.cfg, e)})") from e
        self.step = int(state["step"])
        return self.step

    def save_policy(self, run_dir: Path, metrics: dict[str, float], *, best: bool = False) -> Path:
        from rlkit2.api import save_language_policy

        # a plain HF folder: AutoModelForCausalLM loads it (the metrics are in the run's log)
        return save_language_policy(self.learner, run_dir / ("policy_best" if best else "policy"))

    def finish(self, final: dict[str, float], run_dir: Path) -> dict[str, float]:
        self.save_policy(run_dir, final)
        return final


def load_phase(source: DictConfig | str | Path, *, trust_config: bool = False) -> LMPhase:
    """An lm run's phase rebuilt outside the run loop, to evaluate its policies (a study's front points): from a
    composed config, the initial policy (`agent.init_checkpoint`, or a fresh model); from a checkpoint file, the
    config it records and the learner's state at its step. `LMPhase.load_checkpoint` then moves it to another.

    A checkpoint whose config names user code (`reward=callable`: its `target` is imported and called) is
    refused unless `trust_config=True`: loading a file must not run code the file chooses (your own runs only)."""
    if isinstance(source, DictConfig):
        return LMPhase(source)
    state = ckpt.load(source)
    if not isinstance(state.get("config"), dict):
        raise ConfigError(f"{source}: the checkpoint records no run config; it was not written by rlkit2-train")
    targets = [str(node.get("target")) for node in (state["config"].get("reward"),
                                                     (state["config"].get("env") or {}).get("reward"))
               if isinstance(node, dict) and node.get("kind") == "callable"]
    if targets and not trust_config:
        raise ConfigError(f"{source}: its config imports and calls {', '.join(targets)} (reward=callable); pass "
                          "trust_config=True for a run of your own, or build the phase from a config you composed")
    phase = LMPhase(OmegaConf.create(state["config"]))
    phase.load_checkpoint(source, state)
    return phase


def run(cfg: DictConfig, run_dir: Path, logger: Logger) -> dict[str, float]:
    """Runner for family "lm"."""
    phase = LMPhase(cfg)
    return RunLoop(cfg, run_dir, logger, phase, phase.learner).run()


register_runner("lm", run)
