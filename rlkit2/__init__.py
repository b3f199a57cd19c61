"""rlkit2: offline RL, imitation learning and RLHF on one Actor / Learner / Replay spine.

The public API is what `__all__` lists (documented at docs/api.md); every other name is private.
"""

from rlkit2.api import agent_config, env_spec, load_language_policy, load_policy, make, make_env, save_language_policy
from rlkit2.checkpoint import CheckpointError
from rlkit2.core import (
    Actor,
    Agent,
    BaseActor,
    ConfigError,
    DataError,
    EnvironmentLoop,
    EnvSpec,
    FunctionActor,
    Learner,
    NumericalError,
    Replay,
    RLKitError,
    evaluate,
)
from rlkit2.policy import save_policy
from rlkit2.registry import agent_names
from rlkit2.replay import Batch, TransitionReplay

__version__ = "0.1.0"
__all__ = [
    "Actor",
    "Agent",
    "BaseActor",
    "Batch",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "EnvSpec",
    "EnvironmentLoop",
    "FunctionActor",
    "Learner",
    "NumericalError",
    "RLKitError",
    "Replay",
    "TransitionReplay",
    "__version__",
    "agent_config",
    "agent_names",
    "env_spec",
    "evaluate",
    "load_language_policy",
    "load_policy",
    "make",
    "make_env",
    "save_language_policy",
    "save_policy",
]
