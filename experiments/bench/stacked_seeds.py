"""Several training seeds in one process with stacked weights: would it make the offline grid cheaper?

    python experiments/bench/stacked_seeds.py                       # S = 1, 3, 5 seeds; 3 rounds; 1 thread
    python experiments/bench/stacked_seeds.py --seeds 1 3 --rounds 5 --threads 1
    python experiments/bench/stacked_seeds.py --device cuda --seeds 1 5 20     # on a GPU, where one exists

The grid trains each (agent, dataset, seed) in its own one-thread process. The alternative measured here trains
S seeds of TD3+BC (the grid's most common agent) in one process: the S actors are one `EnsembleMLP`, the 2S
critics one `QEnsemble` (seed s owns members 2s and 2s + 1), every layer one batched matmul for all seeds, one
Adam per role over the stacked tensors. Adam is elementwise and the loss is a sum of per-seed losses, so the
stacked seeds follow exactly the updates S separate runs would make; this is checked before anything is timed
(one full update cycle from the same weights, batches and target noise as S `TD3BCLearner`s, max abs difference
printed). Each seed draws its own batch (one gather of S x batch rows) and its own target-policy noise.

Throughput is counted in seed-updates/s (S updates per stacked step) and compared with rlkit2's `TD3BCLearner`,
the learner the grid runs, timed in the same rounds (interleaved, since the machine may be shared). Writes
`experiments/bench/results/stacked_seeds.json` (`stacked_seeds_cuda.json` with `--device cuda`: the learners and
the stacked weights on the GPU, the equivalence check still on the CPU) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `experiments` importable
    sys.path.insert(0, str(ROOT))

from rlkit2.agents.td3_bc import losses  # noqa: E402
from rlkit2.agents.td3_bc.config import TD3BCConfig  # noqa: E402
from rlkit2.agents.td3_bc.learner import TD3BCLearner  # noqa: E402
from rlkit2.core import EnvSpec  # noqa: E402
from rlkit2.learners import make_adam  # noqa: E402
from rlkit2.networks import EnsembleMLP, QEnsemble, soft_update  # noqa: E402
from rlkit2.replay import Batch, TransitionReplay  # noqa: E402

OUT = ROOT / "experiments" / "bench" / "results" / "stacked_seeds.json"
OBS, ACT = 17, 6


class StackedTD3BC:
    """S independent TD3+BC learners as one: stacked weights, per-seed losses summed (no cross-seed coupling)."""

    def __init__(self, config: TD3BCConfig, replay: Any, learners: list[TD3BCLearner]):
        self.c, self.replay, self.s = config, replay, len(learners)
        self.max_action, device = learners[0].max_action, learners[0].device
        h = config.hidden
        self.actor = EnsembleMLP(self.s, OBS, ACT, h)
        self.critic = QEnsemble(OBS, ACT, n=2 * self.s, hidden=h)
        with torch.no_grad():  # start from the S learners' own weights (and so their seeds' initialisation)
            for i, lrn in enumerate(learners):
                lin = [m for m in lrn.actor.net if isinstance(m, torch.nn.Linear)]
                for dst, src in zip([*self.actor.layers, self.actor.out], lin, strict=True):
                    dst.weight[i].copy_(src.weight.T)
                    dst.bias[i, 0].copy_(src.bias)
                for dst, src in zip([*self.critic.net.layers, self.critic.net.out],
                                    [*lrn.critic.net.layers, lrn.critic.net.out], strict=True):
                    dst.weight[2 * i:2 * i + 2].copy_(src.weight)
                    dst.bias[2 * i:2 * i + 2].copy_(src.bias)
        self.actor_target = EnsembleMLP(self.s, OBS, ACT, h).requires_grad_(False)
        self.critic_target = QEnsemble(OBS, ACT, n=2 * self.s, hidden=h).requires_grad_(False)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.critic_target.load_state_dict(self.critic.state_dict())
        for m in (self.actor, self.critic, self.actor_target, self.critic_target):
            m.to(device)  # before the optimisers exist, as the learners do
        self.actor_params, self.critic_params = list(self.actor.parameters()), list(self.critic.parameters())
        self.actor_opt = make_adam(self.actor_params, config.actor_lr)
        self.critic_opt = make_adam(self.critic_params, config.critic_lr)
        self.generators = [lrn.generator for lrn in learners]  # each seed's own target-noise stream
        self.num_steps = 0

    def pi(self, net: EnsembleMLP, obs: torch.Tensor) -> torch.Tensor:
        return self.max_action * torch.tanh(net(obs))

    def q(self, net: QEnsemble, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """(S, B, .) -> (S, 2, B): each seed's inputs go to its own two critics."""
        both = lambda x: x.repeat_interleave(2, dim=0)  # noqa: E731
        return net(both(obs), both(act)).view(self.s, 2, -1)

    def step(self, batch: Batch | None = None) -> dict[str, torch.Tensor]:
        c, s = self.c, self.s
        b = batch if batch is not None else self.replay.sample(s * c.batch_size)
        obs, act, rew, nxt, term = (x.view(s, c.batch_size, *x.shape[1:]) for x in
                                    (b.observations, b.actions, b.rewards, b.next_observations, b.terminals))
        with torch.no_grad():
            noise = torch.stack([torch.randn(c.batch_size, ACT, generator=g) for g in self.generators])
            noise = noise.to(obs.device, non_blocking=True)  # drawn on the CPU, as the learners draw theirs
            next_a = losses.smoothed_target_action(self.pi(self.actor_target, nxt),
                                                   noise * (c.policy_noise * self.max_action),
                                                   c.noise_clip * self.max_action, self.max_action)
            target = losses.bellman_target(rew, term, self.q(self.critic_target, nxt, next_a).min(dim=1).values,
                                           c.gamma)
        q = self.q(self.critic, obs, act)
        critic_loss = ((q - target.unsqueeze(1)) ** 2).mean(dim=2).sum()  # TD3's loss, summed over seeds
        self._apply(self.critic_opt, critic_loss, self.critic_params)
        self.num_steps += 1
        if self.num_steps % c.policy_freq == 0:
            pi = self.pi(self.actor, obs)
            q_pi = self.q(self.critic, obs, pi)[:, 0]  # member 0 of each seed, (S, B)
            lam = c.alpha / q_pi.abs().mean(dim=1).detach().clamp_min(1e-6)
            actor_loss = (-lam * q_pi.mean(dim=1) + c.bc_weight * ((pi - act) ** 2).mean(dim=(1, 2))).sum()
            self._apply(self.actor_opt, actor_loss, self.actor_params)
            soft_update(self.critic_target, self.critic, c.tau)
            soft_update(self.actor_target, self.actor, c.tau)
        return {"critic_loss": critic_loss.detach()}

    @staticmethod
    def _apply(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list[torch.Tensor]) -> None:
        opt.zero_grad(set_to_none=True)
        for p, g in zip(params, torch.autograd.grad(loss, params), strict=True):
            p.grad = g
        opt.step()


class FixedBatches:
    """A replay stand-in that hands out given batches in order (for the equivalence check)."""

    def __init__(self, batches: list[Batch]):
        self.batches, self.i = batches, 0

    def sample(self, batch_size: int) -> Batch:
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        assert b.observations.shape[0] == batch_size
        return b

    def __len__(self) -> int:
        return 0  # no dataset statistics: the check runs without observation normalisation


def _cat(batches: list[Batch]) -> Batch:
    return Batch(*(torch.cat([getattr(b, f) for b in batches]) for f in
                   ("observations", "actions", "rewards", "next_observations", "terminals")))


def equivalence_error(s: int, config: TD3BCConfig, replay: TransitionReplay) -> float:
    """Largest |stacked - separate| over all weights after `policy_freq` updates from the same start."""
    cfg = TD3BCConfig(**{**config.__dict__, "normalize_obs": False})
    per_seed = [[replay.sample(cfg.batch_size) for _ in range(cfg.policy_freq)] for _ in range(s)]
    learners = [TD3BCLearner(cfg, EnvSpec(OBS, ACT), FixedBatches(per_seed[i]), seed=i) for i in range(s)]
    stacked = StackedTD3BC(cfg, None, learners)
    stacked.generators = [torch.Generator().manual_seed(i + 1) for i in range(s)]  # the learners' own seeds
    for k in range(cfg.policy_freq):
        stacked.step(_cat([per_seed[i][k] for i in range(s)]))
    err = 0.0
    for i, lrn in enumerate(learners):
        for _ in range(cfg.policy_freq):
            lrn.step()
        lin = [m for m in lrn.actor.net if isinstance(m, torch.nn.Linear)]
        for dst, src in zip([*stacked.actor.layers, stacked.actor.out], lin, strict=True):
            err = max(err, float((dst.weight[i] - src.weight.T).detach().abs().max()))
        for dst, src in zip([*stacked.critic.net.layers, stacked.critic.net.out],
                            [*lrn.critic.net.layers, lrn.critic.net.out], strict=True):
            err = max(err, float((dst.weight[2 * i:2 * i + 2] - src.weight).detach().abs().max()))
    return err


def synthetic_replay(n: int = 100_000, seed: int = 0, device: str = "cpu") -> TransitionReplay:
    rng = np.random.default_rng(seed)
    arrays = {"observations": rng.normal(size=(n, OBS)).astype(np.float32),
              "actions": rng.uniform(-1, 1, size=(n, ACT)).astype(np.float32),
              "rewards": rng.normal(size=n).astype(np.float32),
              "next_observations": rng.normal(size=(n, OBS)).astype(np.float32),
              "terminals": (rng.random(n) < 0.01).astype(np.float32)}
    return TransitionReplay.from_arrays(arrays, seed=seed, device=device)


def seed_updates_per_s(step: Any, seeds: int, updates: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # the warm-up's queued kernels are not timed
    t0 = time.perf_counter()
    for _ in range(updates):
        m = step()
    float(m["critic_loss"])
    return seeds * updates / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5], help="stack sizes S to time")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--updates", type=int, default=300, help="stacked steps per timing")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where the timed learners train")
    p.add_argument("--out", default="", help=f"default {OUT} (stacked_seeds_cuda.json on cuda)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device on this machine")
    out = Path(args.out or (OUT.with_name("stacked_seeds_cuda.json") if args.device == "cuda" else OUT))
    if any(s < 1 for s in args.seeds) or args.rounds < 1 or args.updates < 1 or args.threads < 1:
        p.error("--seeds, --rounds, --updates and --threads must be positive")
    torch.set_num_threads(args.threads)
    config = TD3BCConfig()
    check = {s: equivalence_error(s, config, synthetic_replay()) for s in args.seeds}
    print("stacked vs separate, max abs weight difference after one update cycle: "
          + ", ".join(f"S={s}: {e:.1e}" for s, e in check.items()), flush=True)
    if max(check.values()) > 1e-4:
        raise SystemExit("the stacked learner does not follow the separate learners' updates; not timing it")
    spec, replay = EnvSpec(OBS, ACT), synthetic_replay(device=args.device)
    single = TD3BCLearner(config, spec, replay, seed=0)
    stacks = {s: StackedTD3BC(config, replay, [TD3BCLearner(config, spec, replay, seed=i) for i in range(s)])
              for s in args.seeds}
    rows: dict[str, list[float]] = {"TD3BCLearner (the grid's)": []} | {f"stacked S={s}": [] for s in args.seeds}
    for r in range(args.rounds):
        rows["TD3BCLearner (the grid's)"].append(seed_updates_per_s(single.step, 1, args.updates, 20))
        for s, st in stacks.items():
            rows[f"stacked S={s}"].append(seed_updates_per_s(st.step, s, args.updates, 20))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rows.items()), flush=True)
    base = statistics.median(rows["TD3BCLearner (the grid's)"])
    lines = [f"TD3+BC seed-updates/s, batch {config.batch_size}, MLPs {config.hidden}, obs {OBS}, act {ACT}, "
             f"{args.threads} thread(s), {args.rounds} interleaved rounds of {args.updates} steps, on "
             f"{torch.cuda.get_device_name(0) if args.device == 'cuda' else 'the CPU'}",
             "", "| learner | seed-updates/s (median) | best | vs TD3BCLearner |", "|---|---:|---:|---:|"]
    for k, v in rows.items():
        lines.append(f"| {k} | {statistics.median(v):.0f} | {max(v):.0f} | {statistics.median(v) / base:.2f}x |")
    table = "\n".join(lines)
    print(table)
    from experiments import provenance

    res = {"config": {"batch": config.batch_size, "hidden": config.hidden, "obs": OBS, "act": ACT,
                      "threads": args.threads, "rounds": args.rounds, "updates": args.updates,
                      "device": args.device},
           "equivalence_max_abs_error": {str(s): e for s, e in check.items()},
           "seed_updates_per_s": rows, "table": table,
           "machine": provenance.machine(), "versions": provenance.versions()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
