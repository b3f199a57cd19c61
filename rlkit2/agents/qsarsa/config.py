from __future__ import annotations

import dataclasses

from rlkit2.agents.td3_bc.config import TD3BCConfig
from rlkit2.validation import Fields


@dataclasses.dataclass
class QsarsaACConfig(TD3BCConfig):
    """Qsarsa-AC: TD3+BC whose critic is regularised towards Q_sarsa (reconstruction, see losses.py).

    TD3+BC's hyper-parameters are the defaults (the paper builds on TD3 / TD3+BC); the Q_sarsa
    weights `eta`, `beta`, `kappa` are our choices (the paper's were not found).
    """

    name: str = "qsarsa_ac"
    eta: float = 0.1  # critic penalty weight: (Q(s, pi(s)) - Q_sarsa(s, pi(s)))^2
    beta: float = 0.0  # target blend toward Qbar_sarsa(s', a~') (ablation; 0 = off)
    kappa: float = 0.0  # actor: weight of Q_sarsa(s, pi(s)) as a second critic (0 = TD3+BC's actor)
    sarsa_lr: float = 3e-4
    sarsa_members: int = 1
    q_sarsa_checkpoint: str = ""  # a QSarsaLearner.save() file to start Q_sarsa from (its Q networks only)
    # the first this-many learner updates train Q_sarsa alone (actor and critic wait); they count in the budget
    sarsa_pretrain_steps: int = 0
    # no SARSA updates once the agent's own updates start: Q_sarsa from the checkpoint or the pretraining, as is
    freeze_q_sarsa: bool = False

    @classmethod
    def check(cls, f: Fields) -> None:
        super().check(f)
        f.non_negative("eta", what="the critic penalty weight")
        f.probability("beta", "kappa", label="a mixing weight must")
        f.lr("sarsa_lr")
        f.count("sarsa_members")
        f.non_negative("sarsa_pretrain_steps")


@dataclasses.dataclass
class QsarsaAC2Config(QsarsaACConfig):
    """Qsarsa-AC2: critic *and* actor regularised towards Q_sarsa (reconstruction, see losses.py)."""

    name: str = "qsarsa_ac2"
    kappa: float = 0.5


@dataclasses.dataclass
class QsarsaConfig(QsarsaACConfig):
    """`agent=qsarsa`: the same as Qsarsa-AC (the paper's first algorithm)."""

    name: str = "qsarsa"
