"""rlkit2: offline RL, imitation learning and RLHF on one Actor / Learner / Replay spine."""

from rlkit2.core import Actor, EnvironmentLoop, Learner, Replay, evaluate

__version__ = "0.1.0"
__all__ = ["Actor", "EnvironmentLoop", "Learner", "Replay", "evaluate", "__version__"]
