"""Data-parallel learners: K gloo processes take the same step as one process on the combined batch."""

from __future__ import annotations

import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rlkit2.agents.td3 import TD3Config, TD3Learner
from rlkit2.core import EnvSpec
from rlkit2.distributed import shutdown
from rlkit2.replay import TransitionReplay

STEPS, BATCH = 6, 64


def _dataset() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 500
    return {"observations": rng.normal(size=(n, 5)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32),
            "next_observations": rng.normal(size=(n, 5)).astype(np.float32),
            "terminals": (rng.uniform(size=n) < 0.05).astype(np.float32)}


def _train(steps: int) -> dict:
    torch.manual_seed(0)
    replay = TransitionReplay.from_arrays(_dataset(), seed=0)
    # policy_noise=0: target smoothing noise is per sample and would differ between the layouts.
    cfg = TD3Config(hidden=[32, 32], batch_size=BATCH, policy_noise=0.0)
    learner = TD3Learner(cfg, EnvSpec(5, 2), replay)
    for _ in range(steps):
        learner.step()
    return learner.state_dict()["modules"]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        modules = _train(STEPS)
        if rank == 0:
            torch.save(modules, out)
    except BaseException:
        shutdown(clean=False)
        raise
    shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_equal_one_process_on_the_combined_batch(tmp_path):
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    ddp = torch.load(out)
    single = _train(STEPS)
    for module, params in single.items():
        for k, v in params.items():
            torch.testing.assert_close(ddp[module][k], v, atol=1e-5, rtol=1e-4, msg=f"{module}.{k}")
    # And the layouts really trained: parameters moved away from initialisation.
    torch.manual_seed(0)
    init = _train(0)
    assert not torch.allclose(init["critic"]["net.out.weight"], single["critic"]["net.out.weight"])


# Every offline control agent must step through the shared `optimizer_step` (gradients averaged across ranks):
# ranks that sample different shards of one global batch then hold identical parameters after each update.
OFFLINE_AGENTS = ["td3_bc", "iql", "cql", "qsarsa_ac", "qsarsa_ac2", "bc"]


def _agent_modules(name: str, steps: int) -> dict:
    from rlkit2.registry import get_agent

    data = _dataset()
    data["next_actions"] = np.roll(data["actions"], -1, 0)
    data["next_action_valid"] = (1.0 - data["terminals"]).astype(np.float32)
    replay = TransitionReplay.from_arrays(data, seed=0)
    entry = get_agent(name)
    overrides = {"hidden": [16, 16], "batch_size": BATCH}
    fields = {f.name for f in __import__("dataclasses").fields(entry.config_cls)}
    cfg = entry.config_cls(**{k: v for k, v in overrides.items() if k in fields})
    agent = entry.builder(cfg, EnvSpec(5, 2), replay, seed=0)
    for _ in range(steps):
        agent.learner.step()
    return agent.learner.state_dict()["modules"]


def _agents_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.save({name: _agent_modules(name, 3) for name in OFFLINE_AGENTS}, f"{out}.{rank}")
    except BaseException:
        shutdown(clean=False)
        raise
    shutdown()


def test_every_offline_agent_keeps_its_ranks_in_sync(tmp_path):
    out = str(tmp_path / "agents")
    mp.spawn(_agents_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    r0, r1 = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    for name in OFFLINE_AGENTS:
        for module, params in r0[name].items():
            for k, v in params.items():
                if isinstance(v, torch.Tensor) and v.is_floating_point():
                    torch.testing.assert_close(r1[name][module][k], v, msg=f"{name}: {module}.{k} differs across ranks")
