from __future__ import annotations

import dataclasses

from rlkit2.validation import Fields, ValidatedConfig


@dataclasses.dataclass
class BCConfig(ValidatedConfig):
    """Behaviour cloning from demonstrations (robomimic's BC, low-dim MLP variant)."""

    name: str = "bc"
    head: str = "gaussian"  # "gaussian" (Gaussian around a tanh mean, NLL) or "deterministic" (tanh, MSE)
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    normalize_obs: bool = True  # demo mean/std, stored with the policy
    obs_std_eps: float = 1e-2  # added to the demo std: dims nearly constant in demos (cube tilt) stay tame
    dropout: float = 0.0
    # observation dims the policy sees ([] = all), e.g. features that do not depend on where the object is
    obs_dims: list[int] = dataclasses.field(default_factory=list)
    min_std: float = 0.05  # Gaussian head: lower bound of the std (saturated demo actions would collapse it)

    @classmethod
    def check(cls, f: Fields) -> None:
        f.choice("head", ("gaussian", "deterministic"))
        f.widths("hidden")
        f.lr("lr")
        f.non_negative("weight_decay", "obs_std_eps", "min_std")
        f.count("batch_size")
        f.in_range("dropout", 0, 1, hi_open=True, label="a dropout rate must")
        f.indices("obs_dims")
