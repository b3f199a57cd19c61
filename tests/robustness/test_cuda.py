"""The GPU path on a real CUDA device: learners train there, checkpoints move between GPU and CPU, a run resumes
exactly on the GPU after kill -9, and a GPU-trained policy loads on the CPU.

Skipped where torch sees no CUDA device (CI and the project's CPU machines, where `tests/offline/test_devices.py`
covers the same code path with CPU device strings). Run on a GPU machine: `pytest tests/robustness/test_cuda.py`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit2.train import run
from tests.helpers import compose_config
from tests.offline.test_devices import TINY_TD3, _build, _run, resume_from, save_midway
from tests.robustness.test_kill_resume import assert_offline_mid_window_resume, assert_offline_sigkill_resume

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

AGENTS = ["td3_bc", "sac", "cql", "iql", "bc", "poir", "qsarsa_ac", "qsarsa_ac2"]
# Online SAC draws its policy noise from the global RNG of the device it trains on (the CUDA generator on a GPU,
# saved in its checkpoints), not from a CPU Generator, so on a GPU it follows its own random stream: it resumes
# exactly there but does not track a CPU run.
OWN_STREAM = {"sac"}
OBS = np.array([0.3, -0.2], np.float32)


def _close(a: list[dict[str, float]], b: list[dict[str, float]]) -> None:
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    for ra, rb in zip(a, b, strict=True):
        for k in ra:
            assert np.isfinite(rb[k]), k
            np.testing.assert_allclose(rb[k], ra[k], rtol=1e-3, atol=1e-4, err_msg=k)


@pytest.mark.parametrize("name", AGENTS)
def test_learner_on_cuda_follows_the_cpu_learner(name):
    """Same init (built on the CPU, then moved), same batches (CPU sampler), same noise (CPU Generators): the GPU
    learner's losses track the CPU learner's to float32 round-off, and its policy acts on CPU arrays."""
    torch.manual_seed(123)
    cpu = _build(name, "cpu")
    torch.manual_seed(123)
    gpu = _build(name, "cuda")
    assert gpu.learner.device.type == "cuda"
    assert all(p.device.type == "cuda" for m in gpu.learner.modules.values() for p in m.parameters())
    torch.manual_seed(7)
    a = _run(cpu.learner, 5)
    torch.manual_seed(7)
    b = _run(gpu.learner, 5)
    if name in OWN_STREAM:
        assert all(np.isfinite(v) for r in b for v in r.values())
    else:
        _close(a, b)
    act = gpu.policy.act(OBS)
    assert isinstance(act, np.ndarray) and act.dtype == np.float32
    if name not in OWN_STREAM:
        np.testing.assert_allclose(act, cpu.policy.act(OBS), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["td3_bc", "sac", "iql", "bc", "poir", "qsarsa_ac2"])
def test_cuda_checkpoint_resumes_exactly_on_cuda_and_loads_on_the_cpu(name, tmp_path):
    _, straight = save_midway(name, "cuda", tmp_path / "c.pt")
    assert resume_from(name, "cuda", tmp_path / "c.pt")[1] == straight  # bit for bit on the same device
    _, on_cpu = resume_from(name, "cpu", tmp_path / "c.pt")
    if name not in OWN_STREAM:
        _close(straight, on_cpu)


@pytest.mark.parametrize("agent", ["td3_bc", "iql", "qsarsa_ac2"])
def test_offline_run_on_cuda_resumes_mid_window_exactly(tmp_path, hopper_file, agent):
    assert_offline_mid_window_resume(hopper_file, tmp_path, agent, "trainer.device=cuda")


def test_offline_run_on_cuda_sigkill_resume_equals_uninterrupted(tmp_path, hopper_file):
    assert_offline_sigkill_resume(hopper_file, tmp_path, "trainer.device=cuda")


def test_online_run_on_cuda_leaves_a_policy_the_cpu_loads(tmp_path):
    from rlkit2 import load_policy

    run(compose_config([*TINY_TD3, "trainer.device=cuda"]), tmp_path / "run")
    policy = load_policy(tmp_path / "run")  # the CPU by default, whatever device trained it
    act = policy(np.zeros(11, np.float32))  # Hopper-v5's observation
    assert isinstance(act, np.ndarray) and act.shape == (3,) and np.all(np.isfinite(act))
    on_gpu = load_policy(tmp_path / "run", device="cuda")
    np.testing.assert_allclose(on_gpu(np.zeros(11, np.float32)), act, rtol=1e-4, atol=1e-5)
