"""rlkit2's environments (installed as `rlkit2.envs`). Importing this package registers them with Gymnasium
under the `rlkit2/` namespace (`gym.make("rlkit2/Lift-v0", shift={...})`; see `rlkit2.envs.registration`)."""

from .registration import register_envs, registered_ids

register_envs()

__all__ = ["register_envs", "registered_ids"]
