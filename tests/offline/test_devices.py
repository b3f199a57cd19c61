"""Control and imitation agents on a torch device (trainer.device): the device code path, on the CPU here.

The learners take their device from the replay (`TransitionReplay(device=...)`, set by the runners from
`trainer.device`): modules are moved there before their optimisers exist, noise is drawn from CPU Generators and
moved, and saved state loads onto any device. This machine has no GPU: these tests pass device strings that
name the CPU ("cpu", "cpu:0") through that path and check that the numbers do not move, and that a CUDA or MPS
device this machine lacks is refused with a message saying so.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit2 import checkpoint
from rlkit2.core import ConfigError, EnvSpec
from rlkit2.registry import build_agent, get_agent
from rlkit2.replay import TransitionReplay
from tests.helpers import compose_config
from tests.offline.tiny import point_mass_dataset

SMALL = {"hidden": [32, 32], "batch_size": 32}
AGENTS = ["td3_bc", "sac", "cql", "iql", "bc", "poir"]


def _replay(data: dict[str, np.ndarray], device: str | None, seed: int = 1) -> TransitionReplay:
    return (TransitionReplay.from_arrays(data, seed=seed) if device is None
            else TransitionReplay.from_arrays(data, seed=seed, device=device))


def _build(name: str, device: str | None, seed: int = 0, replay_seed: int = 1):
    entry = get_agent(name)
    fields = set(entry.config_cls.__dataclass_fields__)
    cfg = entry.config_cls(**{k: v for k, v in SMALL.items() if k in fields})
    if name == "poir":
        cfg.ensemble_size, cfg.model_hidden, cfg.horizon, cfg.num_samples = 2, [16], 2, 8
        cfg.prior.hidden, cfg.prior.batch_size = [16], 16
    data, _ = point_mass_dataset(episodes=10)
    if name == "poir":  # POIR's demos: (s, a, s') of the point mass, two action dims
        data = {**data, "actions": np.repeat(data["actions"], 2, axis=1)}
        data.pop("next_actions", None)
    spec = EnvSpec(2, 2 if name == "poir" else 1)
    torch.manual_seed(seed)  # online SAC initialises from the global stream (the runner seeds it)
    return build_agent(name, cfg, spec, _replay(data, device, replay_seed), seed)


def _run(learner, n: int) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in learner.step().items()} for _ in range(n)]


@pytest.mark.parametrize("name", AGENTS)
@pytest.mark.parametrize("device", ["cpu", "cpu:0"])
def test_explicit_device_gives_the_default_numbers(name, device):
    torch.manual_seed(123)
    default = _build(name, None)
    torch.manual_seed(123)
    explicit = _build(name, device)
    assert explicit.learner.device == torch.device(device)
    assert all(p.device.type == "cpu" for m in explicit.learner.modules.values() for p in m.parameters())
    torch.manual_seed(7)
    a = _run(default.learner, 5)
    torch.manual_seed(7)
    b = _run(explicit.learner, 5)
    assert a == b
    obs = np.array([0.3, -0.2], np.float32)
    act = explicit.policy.act(obs)
    assert isinstance(act, np.ndarray) and act.dtype == np.float32
    np.testing.assert_array_equal(default.policy.act(obs), act)


def save_midway(name: str, device: str, path) -> tuple[object, list[dict[str, float]]]:
    """A learner trained 4 steps on `device` and saved to `path` (the replay's state beside the learner's, as a
    run saves them: SAC's learner does not carry its sampler), then 4 more steps: (learner, those steps)."""
    first = _build(name, device).learner
    _run(first, 4)
    checkpoint.save({"learner": first.state_dict(), "replay": first.replay.state_dict()}, path)
    torch.manual_seed(11)
    return first, _run(first, 4)


def resume_from(name: str, device: str, path) -> tuple[object, list[dict[str, float]]]:
    """A learner of other init and sampler on `device`, loaded from `path` (read on the CPU, as runs resume):
    (learner, its 4 steps after the load)."""
    other = _build(name, device, seed=42, replay_seed=99).learner
    saved = checkpoint.load(path)  # read per use: a loaded optimiser state is the file's tensors, then stepped
    other.replay.load_state_dict(saved["replay"])
    other.load_state_dict(saved["learner"])
    assert all(p.device.type == torch.device(device).type for m in other.modules.values() for p in m.parameters())
    torch.manual_seed(11)
    return other, _run(other, 4)


@pytest.mark.parametrize("name", ["td3_bc", "sac", "bc", "poir"])
def test_checkpoint_saved_on_one_device_resumes_on_another(name, tmp_path):
    first, straight = save_midway(name, "cpu", tmp_path / "c.pt")
    other, resumed = resume_from(name, "cpu:0", tmp_path / "c.pt")  # other device string, init and sampler
    assert resumed == straight
    for k, mod in first.modules.items():
        for p1, p2 in zip(mod.state_dict().values(), other.modules[k].state_dict().values(), strict=True):
            assert torch.equal(p1, p2), k


def test_generator_state_loads_whatever_device_it_was_mapped_to():
    learner = _build("td3_bc", "cpu").learner
    state = learner.state_dict()
    state["generator"] = state["generator"].to("cpu:0")
    learner.load_state_dict(state)  # Generator.set_state wants a CPU ByteTensor: read as one


TINY_TD3 = ["agent=td3", "env=hopper", "agent.hidden=[32,32]", "agent.batch_size=32", "trainer.total_steps=300",
            "trainer.learning_starts=200", "trainer.eval_episodes=1", "trainer.progress=false",
            "logger.console=false", "trainer.plot=false", "trainer.threads=1"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_on_a_machine_without_one_says_so(device, tmp_path):
    from rlkit2.train import run

    cfg = compose_config([*TINY_TD3, f"trainer.device={device}"])
    with pytest.raises(ConfigError, match=f"trainer.device={device}: no CUDA device is available on this machine"):
        run(cfg, tmp_path / "run")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has an MPS device")
def test_mps_on_a_machine_without_one_says_so(tmp_path):
    from rlkit2.train import run

    cfg = compose_config([*TINY_TD3, "trainer.device=mps"])
    with pytest.raises(ConfigError, match="trainer.device=mps: no MPS device is available on this machine"):
        run(cfg, tmp_path / "run")


def test_unknown_device_is_refused():
    from rlkit2.run.control import ControlSetup

    cfg = compose_config([*TINY_TD3, "trainer.device=tpu"])
    with pytest.raises(ConfigError, match="trainer.device=tpu"):
        ControlSetup(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_imitation_runner_resolves_the_device_too(tmp_path):
    from rlkit2.run.imitation import ImitationPhase

    cfg = compose_config(["agent=poir", "env=robosuite/lift", "trainer.device=cuda"])
    with pytest.raises(ConfigError, match="no CUDA device is available on this machine"):
        ImitationPhase(cfg, tmp_path)


def test_cuda_device_names_are_resolved_to_an_index(monkeypatch):
    """A bare `cuda` becomes the current device (torch.cuda.set_device refuses an index-less device: found on a
    real GPU), `cuda` under torchrun this rank's GPU, and an index past the device count is refused; the CUDA
    runtime is stood in for, so this runs on CPU machines."""
    from types import SimpleNamespace

    from rlkit2.run.common import resolve_device

    chosen: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: chosen.append(d))
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device(SimpleNamespace(device="cuda")) == torch.device("cuda", 0)
    assert resolve_device(SimpleNamespace(device="cuda", distributed=True)) == torch.device("cuda", 1)
    assert resolve_device(SimpleNamespace(device="cuda:1")) == torch.device("cuda", 1)
    assert chosen == [torch.device("cuda", 0), torch.device("cuda", 1), torch.device("cuda", 1)]
    with pytest.raises(ConfigError, match="trainer.device=cuda:2: this machine has 2 CUDA device"):
        resolve_device(SimpleNamespace(device="cuda:2"))
