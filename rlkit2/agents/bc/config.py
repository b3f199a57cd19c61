from __future__ import annotations

import dataclasses

from rlkit2.core import ConfigError
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
    # image observation keys (robomimic's e.g. agentview_image, uint8 (H, W, C)): each through its own CNN
    # (`rlkit2.networks.ImageEncoder`), features concatenated with the low-dim obs before the MLP. The replay
    # must carry them (`rlkit2.agents.bc.ImageReplay`); the imitation runner refuses them (the robosuite env
    # renders no camera observations here).
    image_keys: list[str] = dataclasses.field(default_factory=list)
    image_channels: list[int] = dataclasses.field(default_factory=lambda: [32, 32])  # conv layer widths
    image_feature_dim: int = 64  # features per image key
    image_pool: str = "spatial_softmax"  # or "avg" (global average pooling)
    # BC fine-tuned online on its own successes (the baseline that gets POIR's online budget): the imitation
    # runner rolls out the greedy action + Gaussian noise of std `online_noise_std` (in units of the action
    # bound) for `online_env_steps` env steps in the deployment env; the transitions of each *successful*
    # episode join the training data, and after every episode `online_updates_per_episode` updates draw
    # `online_success_fraction` of each batch from them (the rest from the demos). 0 steps = offline only.
    online_env_steps: int = 0
    online_updates_per_episode: int = 100
    online_success_fraction: float = 0.5
    online_noise_std: float = 0.1

    @classmethod
    def check(cls, f: Fields) -> None:
        f.choice("head", ("gaussian", "deterministic"))
        f.widths("hidden")
        f.lr("lr")
        f.non_negative("weight_decay", "obs_std_eps", "min_std")
        f.count("batch_size")
        f.in_range("dropout", 0, 1, hi_open=True, label="a dropout rate must")
        f.indices("obs_dims")
        f.widths("image_channels")
        f.count("image_feature_dim")
        f.choice("image_pool", ("spatial_softmax", "avg"))
        f.budget("online_env_steps", "online_updates_per_episode")
        f.probability("online_success_fraction", label="a batch fraction must")
        f.non_negative("online_noise_std")
        if f.has("online_env_steps") and f.get("online_env_steps") == 0:  # offline: the online_* knobs do nothing
            for field in (x for x in dataclasses.fields(BCConfig) if x.name.startswith("online_") and
                          x.name != "online_env_steps"):
                if f.has(field.name) and f.get(field.name) != field.default:
                    raise ConfigError(f"{f.name(field.name)}={f.get(field.name)!r} with "
                                      f"{f.name('online_env_steps')}=0: there is no online stage to use it")
        if f.has("image_keys"):
            keys = f.get("image_keys")
            if isinstance(keys, str) or not all(isinstance(k, str) and k for k in keys) or len(set(keys)) != len(keys):
                raise ConfigError(f"{f.name('image_keys')}={keys!r}: expected a list of distinct observation keys")
