"""WARP has no losses of its own: its RL runs use ppo_lm's (re-exported); EMA/SLERP/LITI are rlkit2.merging ops."""

from rlkit2.agents.ppo_lm.losses import kl_penalized_rewards, per_token_kl, rloo_advantages, sequence_pg_loss

__all__ = ["kl_penalized_rewards", "per_token_kl", "rloo_advantages", "sequence_pg_loss"]
