"""Typed top-level configuration, registered in Hydra's ConfigStore.

Each config group's YAML (`conf/agent/td3.yaml`, ...) starts from a dataclass
schema stored here or by its agent/env module (`<name>_schema`), so Hydra runs in
struct mode: a misspelt key is an error that names it. `to_config` is the one converter from a composed node,
a mapping or another dataclass to a typed config, used by every builder, runner and `rlkit2.agent_config`.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlkit2.core import ConfigError
from rlkit2.validation import Fields, ValidatedConfig

C = TypeVar("C")


@dataclasses.dataclass
class TrainerConfig(ValidatedConfig):
    # the run's budget, in the unit of its phase (printed at start): learner updates (offline RL, BC), env steps
    # (online RL), offline updates on the demos (imitation; POIR's online steps are agent.online_env_steps),
    # RL iterations (language agents)
    total_steps: int = 100_000
    eval_every: int = 10_000  # 0 (or eval_episodes=0): no evaluation
    eval_episodes: int = 10
    log_every: int = 1_000
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 2
    learning_starts: int = 5_000  # online: random-action steps before updates begin
    updates_per_step: int = 1  # online: learner updates per env step
    nan_policy: str = "stop"  # "stop": save last good checkpoint and raise; "skip": drop the update
    # cpu, cuda, cuda:N or mps: where the learner's networks, optimiser state and replay batches live (every
    # family); a device this machine lacks is a ConfigError. Replay storage and envs stay on the host.
    device: str = "cpu"
    # "auto": the physical cores divided among the jobs that run at once (a joblib sweep's n_jobs, torchrun's
    # local world size), so parallel jobs never oversubscribe the CPU; or a number of torch threads
    threads: str = "auto"
    progress: bool = True
    distributed: bool = False
    plot: bool = True  # learning-curve PNG in the run dir at the end
    # the first episode of every evaluation as videos/step_<step>.mp4 (and to wandb when it logs); control and
    # robot envs (rendered offscreen as rgb_array: MuJoCo needs EGL or OSMesa on a headless machine)
    video: bool = False
    # an evaluation metric to select a policy by (e.g. eval/success_rate, eval/normalized_score: higher is better;
    # valid/action_mse, an error: lower is better):
    # the policy of the best evaluation so far is also saved as policy_best.pt (language agents: policy_best/).
    # Chosen on the evaluation episodes, so its score is optimistic: report the final policy's, or evaluate the
    # best one on held-out episodes. "" (default): only the final policy.
    keep_best: str = ""

    config_prefix = "trainer"

    @classmethod
    def check(cls, f: Fields) -> None:
        f.count("total_steps", "log_every", "checkpoint_every", "keep_checkpoints")
        f.count("eval_every", "eval_episodes", what="0: no evaluation", minimum=0)
        f.budget("learning_starts")
        f.count("updates_per_step", what="learner updates per env step")
        f.choice("nan_policy", ("stop", "skip"))
        f.threads("threads")
        # the settings that act on evaluations are refused when there are none
        no_eval = (f.has("eval_every") and f.has("eval_episodes")
                   and not (f.get("eval_every") and f.get("eval_episodes")))
        for option, what in (("video", "trainer.video=true records evaluation episodes"),
                             ("keep_best", "trainer.keep_best={} selects by evaluation")):
            if no_eval and f.has(option) and f.get(option):
                raise ConfigError(f"{what.format(f.get(option))}, but evaluation is off (trainer.eval_every or "
                                  "trainer.eval_episodes is 0)")


@dataclasses.dataclass
class LoggerConfig:
    console: bool = True
    jsonl: bool = True
    wandb: bool = False
    project: str = "rlkit2"
    entity: str | None = None
    group: str | None = None  # default: the multirun sweep dir, so a sweep shares one group
    mode: str | None = None  # "online" | "offline" | "disabled"; WANDB_MODE also works
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RunConfig:
    agent: Any = MISSING
    env: Any = MISSING
    logger: LoggerConfig = dataclasses.field(default_factory=LoggerConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    seed: int = 0
    # "" starts fresh; "true"/"auto" resumes from this run dir's checkpoints (set hydra.run.dir to
    # the old dir); any other value is a run dir or checkpoint file to resume from.
    resume: str = ""
    # A checkpoint file a *new* run starts from (fine-tuning, e.g. POIR's or BC's online stage in a shifted env
    # from an offline run): learner, phase state and step counter are loaded, and this run's own config applies
    # (its differences from the checkpoint's are printed). Unlike `resume`, settings may change; a resume of this
    # run dir's own checkpoints (resume=true after a kill) takes precedence.
    init_from: str = ""
    # Load checkpoints that hold pickled Python objects (rlkit2 < 0.2): unpickling runs any code the file
    # carries, so only for files you made yourself; convert them instead with `python -m rlkit2.checkpoint convert`.
    trust_pickle: bool = False
    name: str = ""
    # LM families: the reward config group (conf/reward/, `reward=entailment`); the text env uses it
    # in place of env.reward when set.
    reward: Any = None


def store(name: str, node: Any, group: str | None = None) -> None:
    ConfigStore.instance().store(group=group, name=name, node=node)


store("base_config", RunConfig)
store("console_schema", LoggerConfig, group="logger")


# --------------------------------------------------------------------------- the one config converter


def _plain(node: Any, cls: type, label: str) -> dict[str, Any]:
    """A config layer as a plain dict: a DictConfig (resolved), a dataclass instance or a mapping."""
    if isinstance(node, DictConfig):
        return cast(dict[str, Any], OmegaConf.to_container(node, resolve=True))
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return dataclasses.asdict(node)
    if isinstance(node, Mapping):
        return dict(node)
    raise ConfigError(f"{label}: expected a {cls.__name__}, a DictConfig or a mapping, got {type(node).__name__}")


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass an annotation names (`X` or `X | None`), else None."""
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return annotation
    found = [a for a in typing.get_args(annotation) if isinstance(a, type) and dataclasses.is_dataclass(a)]
    return found[0] if len(found) == 1 else None


def _check_keys(raw: Mapping[str, Any], cls: type, label: str, path: str = "") -> None:
    """Every key of `raw` (and of its nested mappings that fill dataclass fields) is an option of `cls`."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in raw if k not in names)
    if unknown:
        shown = [path + k for k in unknown]
        raise ConfigError(f"{label}: unknown option(s) {shown} for {cls.__name__}; valid options: {sorted(names)}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: OmegaConf's merge still names a bad nested key
        return
    for key, value in raw.items():
        sub = _dataclass_of(hints.get(key))
        if sub is not None and isinstance(value, Mapping):
            _check_keys(value, sub, label, f"{path}{key}.")


def to_config(node: Any, cls: type[C], overrides: Mapping[str, Any] | None = None, *, where: str = "") -> C:
    """`node` as an instance of the dataclass `cls`: the one config converter.

    `node`: an instance of `cls` (returned as is when there are no `overrides`), a DictConfig (e.g. a composed
    Hydra `cfg.agent`, interpolations resolved), a mapping, or a dataclass of another type (its fields). It is
    merged onto `cls`'s defaults, then `overrides` (nested dataclass fields as mappings, e.g.
    `{"model": {"arch": "gemma2"}}`) onto it, through `OmegaConf.structured`, so nested dataclasses are built
    and values are converted to the annotated types. Building the instance runs `cls.__post_init__`, i.e. the
    range checks of `rlkit2.validation.ValidatedConfig`. An unknown key raises `ConfigError` naming it (with its
    path for nested configs) and listing the valid keys; a value of the wrong type raises `ConfigError` naming
    it. `where` prefixes messages (default: the class name).
    """
    if isinstance(node, cls) and not overrides:
        return node
    label = where or cls.__name__
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ConfigError(f"{label}: to_config needs a dataclass type, got {cls!r}")
    layers = [_plain(layer, cls, label) for layer in (node, overrides) if layer is not None]
    for layer in layers:
        _check_keys(layer, cls, label)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), *layers)
        return cast(C, OmegaConf.to_object(merged))
    except OmegaConfBaseException as e:
        valid = sorted(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{label}: {str(e).strip()}\nvalid options: {valid}") from e
