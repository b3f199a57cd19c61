"""The "lm" family's training loop (registered runner) and the learner builder.

    rlkit2-train experiment=rlhf_toy
    rlkit2-train agent=ppo_lm env=text_synthetic reward=entailment reward.model=/path/to/nli

Builds tokenizer, policy (+ value head), frozen reference (a copy of the initial policy, or of
`agent.init_checkpoint`), the text env with its reward, and the PolicyGradientLearner; then runs
`trainer.total_steps` RL iterations, logging `train/*`, evaluating with rlkit2.core.evaluate
(greedy actor, `eval/return`, `eval/success_rate`) plus the batched task metrics
(`eval/true_consistency`, `eval/kl`, ...), and checkpointing through rlkit2.checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rlkit2 import checkpoint as ckpt
from rlkit2 import distributed
from rlkit2.agents.ppo_lm.config import PpoLmConfig
from rlkit2.agents.ppo_lm.learner import PolicyGradientLearner
from rlkit2.core import ConfigError, evaluate
from rlkit2.lm.generation import LMActor, response_logprobs
from rlkit2.lm.models import PolicyWithValue, build_causal_lm, build_word_tokenizer, freeze, load_tokenizer
from rlkit2.logging import Logger, MultiLogger, say
from rlkit2.progress import progress
from rlkit2.registry import get_agent, register_runner
from rlkit2.seeding import rng_state, seed_everything, set_rng_state
from rlkit2.trainer import UpdateGuard, evaluating, resolve_resume, truncate_metrics, validate_common


def to_config(cfg: Any, cls: type) -> Any:
    if isinstance(cfg, cls):
        return cfg
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), raw))


def build_tokenizer(cfg: PpoLmConfig) -> Any:
    if cfg.model.tokenizer:
        return load_tokenizer(cfg.model.tokenizer)
    if cfg.model.name_or_path:
        return load_tokenizer(cfg.model.name_or_path)
    from rlkit2.lm.synthetic import vocabulary

    return build_word_tokenizer(vocabulary())  # the tiny policies' offline word-level vocabulary


def build_policy(cfg: PpoLmConfig, tokenizer: Any, seed: int = 0) -> tuple[PolicyWithValue, Any]:
    """(policy with value head, frozen reference); both start from `init_checkpoint` when given."""
    lm = build_causal_lm(cfg.model, tokenizer, seed=seed)
    if cfg.init_checkpoint:
        state = ckpt.load(cfg.init_checkpoint)
        if "lm" not in state:
            raise ConfigError(f"agent.init_checkpoint={cfg.init_checkpoint} has no 'lm' state dict")
        lm.load_state_dict(state["lm"])
    reference = freeze(copy.deepcopy(lm))
    policy = PolicyWithValue(lm, value_head=cfg.algo == "ppo")
    return policy, reference


def build_learner(cfg: Any, env: Any, tokenizer: Any | None = None, seed: int = 0,
                  reward_fn: Any = None) -> PolicyGradientLearner:
    cfg = to_config(cfg, PpoLmConfig)
    tokenizer = tokenizer or build_tokenizer(cfg)
    policy, reference = build_policy(cfg, tokenizer, seed)
    return PolicyGradientLearner(cfg, policy, reference, tokenizer, env, reward_fn=reward_fn, seed=seed)


@torch.no_grad()
def score_policy(learner: PolicyGradientLearner, env: Any, documents: list[str], greedy: bool = False
                 ) -> dict[str, float]:
    """Reward, task metrics (exact checker), KL to the reference and length on fixed documents."""
    c = learner.config
    actor = LMActor(learner.policy, learner.tokenizer, c.generation, greedy=greedy)
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


def run(cfg: DictConfig, run_dir: Path, logger: Logger) -> dict[str, float]:
    from rlkit2.envs.text import make_text_env

    seed = int(cfg.seed)
    tc = cfg.trainer
    if tc.distributed:  # torchrun: each rank rolls out its own prompts; gradients are averaged in optimizer_step
        distributed.init_from_env(str(tc.device))
    rank = distributed.rank()
    if rank != 0:  # only rank 0 logs, evaluates, checkpoints and saves the policy
        logger = MultiLogger([])
    seed_everything(seed + 1000 * rank)
    entry = get_agent(str(cfg.agent.name))  # ppo_lm, warp, jbond: each "lm" agent brings its config and builder
    agent_cfg = to_config(cfg.agent, entry.config_cls)
    validate_common(agent_cfg, cfg.trainer, None)  # lr > 0, total_steps, nan_policy, ... before anything is built
    agent_cfg.model.device = cfg.trainer.device if cfg.trainer.device != "cpu" else agent_cfg.model.device
    env_cfg = cfg.env
    if cfg.get("reward") is not None:  # the top-level `reward=` group wins over env.reward
        env_cfg = OmegaConf.merge(cfg.env, {"reward": cfg.reward})
    env = make_text_env(env_cfg, seed + 1000 * rank)
    eval_env = make_text_env(env_cfg, seed, reward_fn=env.reward_fn, evaluation=True)
    learner = entry.builder(agent_cfg, env, seed=seed)
    if distributed.is_active():  # every rank starts from rank 0's parameters
        learner.policy.load_state_dict(distributed.broadcast_state(learner.policy.state_dict()))
        learner.reference.load_state_dict(distributed.broadcast_state(learner.reference.state_dict()))
    ckpt_dir = run_dir / "checkpoints"
    guard = UpdateGuard(learner, str(tc.nan_policy), ckpt_dir)  # the control trainer's stop/skip policy
    start = 0
    source = resolve_resume(cfg.resume, run_dir)  # the control trainer's resolution of `resume=`
    if source is not None:
        found = ckpt.resume_state(source, trust=bool(cfg.get("trust_pickle", False)), own_dir=ckpt_dir)
        if found is None:
            say(f"[rlkit2] resume: no valid checkpoint in {source}; starting fresh")
            truncate_metrics(logger, 0)  # rows a run killed before its first checkpoint logged are redone
        else:
            learner.load_state_dict(found[1]["learner"])
            local = found[1].get("ranks", [{"rng": found[1].get("rng")}])
            if len(local) != distributed.world_size():
                raise ConfigError(f"checkpoint {found[0]} was written by {len(local)} process(es); resume it "
                                  f"with as many (this run has {distributed.world_size()})")
            set_rng_state(local[rank]["rng"])
            if local[rank].get("env") is not None and hasattr(env, "load_state_dict"):
                env.load_state_dict(local[rank]["env"])  # this rank's own prompt stream
            start = int(found[1]["step"])
            guard.skipped = int(found[1].get("skipped_updates", 0))
            truncate_metrics(logger, start)
            say(f"[rlkit2] resumed from {found[0]} at step {start}")
    eval_docs = eval_env.sample_documents(max(int(tc.eval_episodes), 1))
    final: dict[str, float] = {}

    def do_eval(step: int) -> dict[str, float]:
        if rank != 0:
            return {}
        greedy = LMActor(learner.policy, learner.tokenizer, agent_cfg.generation, greedy=True)
        m = evaluate(eval_env, greedy, min(int(tc.eval_episodes), 16), seed=seed + 10_000)
        m.update({f"eval/{k}": v for k, v in score_policy(learner, eval_env, eval_docs).items()})
        logger.write(m, step)
        return m

    bar = progress(int(tc.total_steps), start, str(cfg.agent.name), enabled=bool(tc.progress) and rank == 0)
    for step in range(start + 1, int(tc.total_steps) + 1):
        metrics = guard.step(step - 1)  # None: a non-finite update dropped under nan_policy=skip
        if step % max(int(tc.log_every), 1) == 0:
            if metrics is None:
                metrics = {}
            else:
                metrics.update({f"rollout/{k}": v for k, v in env.metrics(learner.replay.all().documents,
                                                                           learner.replay.all().responses).items()})
            if guard.skipping:
                metrics["train/skipped_updates"] = float(guard.skipped)
            logger.write(metrics, step)
        if evaluating(tc) and step % int(tc.eval_every) == 0:
            final = do_eval(step)
        if tc.checkpoint_every and step % int(tc.checkpoint_every) == 0:
            guard.check_before_save(step)
            env_state = env.state_dict() if hasattr(env, "state_dict") else None
            ranks = distributed.gather_objects({"rng": rng_state(), "env": env_state})  # every rank's own state
            if rank == 0:
                ckpt.save({"learner": learner.state_dict(), "rng": ranks[0]["rng"], "ranks": ranks, "step": step,
                           "skipped_updates": guard.skipped,
                           "config": dataclasses.asdict(agent_cfg)}, ckpt.checkpoint_path(ckpt_dir, step))
                ckpt.prune(ckpt_dir, int(tc.keep_checkpoints))
        bar.update(1)
    bar.close()
    if evaluating(tc) and (not final or int(tc.total_steps) % int(tc.eval_every)):
        final = do_eval(int(tc.total_steps))
    if rank == 0:
        from rlkit2.api import save_language_policy

        save_language_policy(learner, run_dir / "policy")  # a plain HF folder: AutoModelForCausalLM loads it alone
    distributed.barrier()
    return final


register_runner("lm", run)
