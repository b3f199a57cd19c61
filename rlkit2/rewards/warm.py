"""WARM: Weight Averaged Reward Models (Ramé et al., 2024), and the ensemble-of-predictions baseline.

Recipe (paper): M reward models are fine-tuned with the Bradley-Terry loss from *one shared pretrained
initialisation* (so they stay linearly mode-connected), made diverse by their runs -- seed, learning rate
(1e-5 / 4e-5 / 1e-4), dropout (0.05 / 0.1), data order -- and by "Baklava" (each member starts from a
different checkpoint of one shared fine-tuning trajectory); the head is first fitted by a linear probe
(LP-FT). The reward model is the plain mean of their weights: one forward pass at inference, where the
ensemble of predictions (ENS) needs M.

Reconstruction (the paper's Baklava checkpoints come from the shared *SFT* fine-tuning of the LLM the RMs are
built on; here the shared init is a pretrained encoder): the shared trajectory is a low-lr Bradley-Terry
fine-tune of the LP-FT init, snapshotted evenly, member i starting from snapshot i.

A member is any `nn.Module` reward model `model(prompts, responses) -> Tensor[B]`. The linear probe needs
two more attributes, which `rlkit2.rewards` reward models expose: `head` (the final `nn.Linear`) and
`features(prompts, responses) -> Tensor[B, H]` (the pooled input of the head).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from rlkit2 import checkpoint
from rlkit2.core import ConfigError
from rlkit2.learners import optimizer_step
from rlkit2.merging import average_state_dicts
from rlkit2.rewards.base import ShapingOptions, register_reward_kind
from rlkit2.rewards.bradley_terry import (
    BTTrainConfig,
    PreferencePair,
    bradley_terry_loss,
    evaluate_pairs,
    pairwise_accuracy,
    train_bradley_terry,
)

# --------------------------------------------------------------------------- the two combined reward models


class WeightAveragedRewardModel(nn.Module):
    """One reward model whose weights are the (weighted) mean of M members' weights."""

    def __init__(self, model: nn.Module, num_members: int):
        super().__init__()
        self.model = model
        self.num_members = num_members

    @classmethod
    def from_models(cls, members: Sequence[nn.Module], weights: Sequence[float] | None = None
                    ) -> WeightAveragedRewardModel:
        if not members:
            raise ConfigError("WARM needs at least one member reward model")
        merged = copy.deepcopy(members[0])
        merged.load_state_dict(average_state_dicts([m.state_dict() for m in members], weights))
        return cls(merged.eval(), len(members))

    @classmethod
    def from_state_dicts(cls, template: nn.Module, sds: Sequence[dict[str, torch.Tensor]]
                         ) -> WeightAveragedRewardModel:
        merged = copy.deepcopy(template)
        merged.load_state_dict(average_state_dicts(sds))
        return cls(merged.eval(), len(sds))

    def forward(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return self.model(prompts, responses)

    def __getattr__(self, name: str) -> Any:  # expose the wrapped model's tokenizer, head, features ...
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)


class PredictionEnsemble(nn.Module):
    """ENS baseline: the mean of M members' predicted rewards (M forward passes a query)."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return torch.stack([m(prompts, responses) for m in self.members]).mean(0)


# --------------------------------------------------------------------------- the diversity recipe


@dataclasses.dataclass
class WarmConfig:
    """How the M members are made diverse (defaults: the paper's grid, cycled over the members)."""

    num_members: int = 4
    lrs: list[float] = dataclasses.field(default_factory=lambda: [1e-5, 4e-5, 1e-4])
    dropouts: list[float] = dataclasses.field(default_factory=lambda: [0.05, 0.1])
    seed: int = 0  # member i gets seed + i for its own randomness and data order
    vary_data_order: bool = True
    baklava: bool = False  # members start from different checkpoints of one shared fine-tuning trajectory
    baklava_steps: int = 50  # length of that shared trajectory
    baklava_lr: float = 1e-5
    linear_probe_steps: int = 200  # LP-FT: fit the head on frozen features first (0: keep the head's init)
    linear_probe_lr: float = 1e-2
    bt: BTTrainConfig = dataclasses.field(default_factory=BTTrainConfig)


@dataclasses.dataclass
class MemberSpec:
    index: int
    seed: int
    lr: float
    dropout: float
    data_seed: int
    init_checkpoint: int  # index into the shared trajectory (0 = the shared init)


def member_specs(cfg: WarmConfig) -> list[MemberSpec]:
    """Member i: lr = lrs[i % len], dropout = dropouts[(i // len(lrs)) % len] (every combination before repeats)."""
    if cfg.num_members < 1 or not cfg.lrs or not cfg.dropouts:
        raise ConfigError(f"WarmConfig: need num_members >= 1 and non-empty lrs/dropouts (got {cfg.num_members}, "
                          f"{cfg.lrs}, {cfg.dropouts})")
    specs = []
    for i in range(cfg.num_members):
        specs.append(MemberSpec(index=i, seed=cfg.seed + i, lr=float(cfg.lrs[i % len(cfg.lrs)]),
                                dropout=float(cfg.dropouts[(i // len(cfg.lrs)) % len(cfg.dropouts)]),
                                data_seed=(cfg.seed + i) if cfg.vary_data_order else cfg.seed,
                                init_checkpoint=i if cfg.baklava else 0))
    return specs


def set_dropout(model: nn.Module, p: float) -> int:
    """Set every `nn.Dropout` of the model to rate p (HF models keep their dropout modules); returns how many."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
            n += 1
    return n


def linear_probe(model: nn.Module, pairs: Sequence[PreferencePair], steps: int, lr: float,
                 batch_size: int = 64, seed: int = 0) -> dict[str, float]:
    """LP stage of LP-FT: fit `model.head` by BT on frozen features (computed once), in place."""
    if not hasattr(model, "head") or not hasattr(model, "features"):
        raise ConfigError("linear_probe needs a reward model with `head` (nn.Linear) and `features(prompts, responses)`"
                          "; set linear_probe_steps=0 for other models")
    model.eval()
    with torch.no_grad():
        fcs: list[torch.Tensor] = []
        frs: list[torch.Tensor] = []
        for i in range(0, len(pairs), batch_size):
            b = pairs[i: i + batch_size]
            prompts = [p.prompt for p in b]
            f = cast(Any, model).features(prompts + prompts, [p.chosen for p in b] + [p.rejected for p in b])
            fcs.append(f[: len(b)])
            frs.append(f[len(b):])
        fc, fr = torch.cat(fcs).float(), torch.cat(frs).float()
    head = cast(nn.Linear, model.head)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(pairs), (min(batch_size, len(pairs)),), generator=g)
        loss = bradley_terry_loss(head(fc[idx]).squeeze(-1), head(fr[idx]).squeeze(-1))
        optimizer_step(opt, loss)
    with torch.no_grad():
        rc, rr = head(fc).squeeze(-1), head(fr).squeeze(-1)
        return {"lp/bt_loss": float(bradley_terry_loss(rc, rr)), "lp/accuracy": float(pairwise_accuracy(rc, rr))}


@dataclasses.dataclass
class WarmResult:
    members: list[nn.Module]
    warm: WeightAveragedRewardModel
    ensemble: PredictionEnsemble
    specs: list[MemberSpec]
    metrics: dict[str, float]


def train_warm(make_model: Callable[[], nn.Module], pairs: Sequence[PreferencePair], cfg: WarmConfig,
               eval_pairs: Sequence[PreferencePair] | None = None,
               log: Callable[[str], None] | None = None) -> WarmResult:
    """Fine-tune the M members from one shared init and combine them (WARM) or their outputs (ENS).

    `make_model()` must return the *same* pretrained initialisation every call (e.g. MiniLM loaded from disk,
    head seeded); the shared init is made once (LP head included) and every member starts from it (or, with
    Baklava, from checkpoint i of a shared low-lr BT fine-tune of it). With `eval_pairs`, the metrics hold
    each member's, WARM's and ENS's pairwise accuracy there.
    """
    log = log or (lambda s: None)
    specs = member_specs(cfg)
    base = make_model()
    metrics: dict[str, float] = {}
    if cfg.linear_probe_steps:
        metrics.update(linear_probe(base, pairs, cfg.linear_probe_steps, cfg.linear_probe_lr, seed=cfg.seed))
        log(f"linear probe: {metrics}")
    inits = [copy.deepcopy(base.state_dict())]
    if cfg.baklava and cfg.num_members > 1:
        # One shared trajectory; snapshot evenly so member i starts i/(M-1) of the way along it.
        traj = copy.deepcopy(base)
        per = max(1, cfg.baklava_steps // (cfg.num_members - 1))
        for _ in range(cfg.num_members - 1):
            bt = dataclasses.replace(cfg.bt, steps=per, lr=cfg.baklava_lr, data_seed=cfg.seed + 10_000 + len(inits))
            train_bradley_terry(traj, pairs, bt)
            inits.append(copy.deepcopy(traj.state_dict()))
        del traj
    members = []
    for s in specs:
        m = copy.deepcopy(base)
        m.load_state_dict(inits[s.init_checkpoint])
        set_dropout(m, s.dropout)
        torch.manual_seed(s.seed)  # dropout masks
        out = train_bradley_terry(m, pairs, dataclasses.replace(cfg.bt, lr=s.lr, data_seed=s.data_seed))
        m.eval()
        metrics.update({f"member{s.index}/{k.split('/')[-1]}": v for k, v in out.items()})
        if eval_pairs is not None:
            metrics[f"member{s.index}/eval_accuracy"] = evaluate_pairs(m, eval_pairs)["accuracy"]
        log(f"member {s.index} {s}: {out}" + (f" eval={metrics[f'member{s.index}/eval_accuracy']:.3f}"
                                              if eval_pairs is not None else ""))
        members.append(m)
    warm = WeightAveragedRewardModel.from_models(members)
    ens = PredictionEnsemble(members).eval()
    if eval_pairs is not None:
        metrics["warm/eval_accuracy"] = evaluate_pairs(warm, eval_pairs)["accuracy"]
        metrics["ens/eval_accuracy"] = evaluate_pairs(ens, eval_pairs)["accuracy"]
    return WarmResult(members, warm, ens, specs, metrics)


# --------------------------------------------------------------------------- `reward=warm`: the reward kind


@dataclasses.dataclass
class WarmRewardConfig(ShapingOptions):
    """`reward=warm`: load M member reward models (rlkit2.rewards.reward_model.RewardModel checkpoints) and
    combine them. `combine`: "average" (WARM, one forward pass), "ensemble" (ENS, M passes) or "member"
    (just member `member`, the single-RM baseline)."""

    kind: str = "warm"
    model: str = "minilm"  # trunk every member was fine-tuned from (HF name/dir or "minilm")
    checkpoints: list[str] = dataclasses.field(default_factory=list)
    directory: str = ""  # alternatively: every `member*.pt` in this folder (sorted)
    combine: str = "average"
    member: int = 0
    pooling: str = "mean"
    max_length: int = 256
    batch_size: int = 64
    device: str = "cpu"


def member_checkpoints(cfg: WarmRewardConfig) -> list[str]:
    paths = list(cfg.checkpoints)
    if cfg.directory:
        d = Path(cfg.directory)
        if not d.is_dir():
            raise ConfigError(f"reward.directory='{cfg.directory}' is not a folder of WARM member checkpoints")
        paths += [str(p) for p in sorted(d.glob("member*.pt"))]
    if not paths:
        raise ConfigError("reward=warm needs member checkpoints: set reward.checkpoints=[a.pt,b.pt,...] or "
                          "reward.directory=<folder with member*.pt>")
    return paths


def save_members(members: Sequence[nn.Module], directory: str | os.PathLike[str]) -> list[Path]:
    """Write member i to `<directory>/member{i:02d}.pt` via rlkit2.checkpoint (what `reward=warm` reads)."""
    out = []
    for i, m in enumerate(members):
        p = Path(directory) / f"member{i:02d}.pt"
        cast(Any, m).save(str(p)) if hasattr(m, "save") else checkpoint.save({"state_dict": m.state_dict()}, p)
        out.append(p)
    return out


def load_combined(cfg: WarmRewardConfig) -> nn.Module:
    """The reward model `cfg` describes: WARM average, ENS or one member."""
    from rlkit2.rewards.reward_model import RewardModel

    if cfg.combine not in ("average", "ensemble", "member"):
        raise ConfigError(f"reward.combine='{cfg.combine}'; expected average, ensemble or member")
    paths = member_checkpoints(cfg)
    template = RewardModel.from_pretrained(cfg.model, cfg.pooling, cfg.max_length)
    if cfg.combine == "member":
        if not 0 <= cfg.member < len(paths):
            raise ConfigError(f"reward.member={cfg.member} but only {len(paths)} member checkpoints were given")
        paths = [paths[cfg.member]]
    sds = [checkpoint.load(p)["state_dict"] for p in paths]
    if cfg.combine == "ensemble":
        members = []
        for sd in sds:
            m = copy.deepcopy(template)
            m.load_state_dict(sd)
            members.append(m.eval())
        return PredictionEnsemble(members).to(cfg.device).eval()
    return WeightAveragedRewardModel.from_state_dicts(template, sds).to(cfg.device).eval()


def _make(cfg: WarmRewardConfig, device: str | None = None, **_: Any) -> Any:
    from rlkit2.rewards.reward_model import RewardModelReward

    if device:
        cfg = dataclasses.replace(cfg, device=device)
    return RewardModelReward(load_combined(cfg), cfg.batch_size)


register_reward_kind("warm", WarmRewardConfig, _make)
