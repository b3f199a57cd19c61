"""Every env rlkit2 defines is a Gymnasium id under `rlkit2/` once rlkit2.envs is imported; shifts and config
options are gym.make keywords; robosuite envs render rgb_array frames offscreen (EGL/OSMesa)."""

from __future__ import annotations

import importlib.util
import os

import gymnasium as gym
import numpy as np
import pytest
import rlkit2.envs

from rlkit2.core import ConfigError

HAS_ROBOSUITE = importlib.util.find_spec("robosuite") is not None
ROBOSUITE_IDS = ["rlkit2/Lift-v0", "rlkit2/Can-v0"]


def test_ids_registered_without_importing_robosuite():
    import subprocess
    import sys

    code = ("import sys, gymnasium as gym, rlkit2.envs; "
            "print(sorted(k for k in gym.registry if k.startswith('rlkit2/')), 'robosuite' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['rlkit2/Can-v0', 'rlkit2/Lift-v0', 'rlkit2/TextGeneration-v0'] False"
    assert rlkit2.envs.registered_ids() == ["rlkit2/Can-v0", "rlkit2/Lift-v0", "rlkit2/TextGeneration-v0"]
    assert rlkit2.envs.register_envs() == rlkit2.envs.registered_ids()  # idempotent


@pytest.mark.parametrize("env_id", rlkit2.envs.registered_ids())
def test_gym_make_every_registered_id(env_id):
    if env_id in ROBOSUITE_IDS and not HAS_ROBOSUITE:
        pytest.skip("robosuite is not installed (pip install 'rlkit2[robosuite]')")
    kwargs = {"horizon": 5} if env_id in ROBOSUITE_IDS else {}
    env = gym.make(env_id, **kwargs)
    try:
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        action = "a short summary" if env_id.endswith("TextGeneration-v0") else env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(reward, float) and env.observation_space.contains(obs)
    finally:
        env.close()


@pytest.mark.skipif(not HAS_ROBOSUITE, reason="robosuite is not installed")
def test_shift_and_options_as_gym_make_keywords():
    from rlkit2.envs.robosuite import ShiftConfig

    env = gym.make("rlkit2/Lift-v0", shift={"init": 0.1, "action_noise": 0.05}, horizon=3)
    try:
        inner = env.unwrapped
        assert inner.cfg.task == "Lift" and inner.cfg.horizon == 3
        assert inner.shift.init == 0.1 and inner.shift.action_noise == 0.05
        env.reset(seed=0)
        flags = [env.step(np.zeros(7, np.float32))[3] for _ in range(3)]
        assert flags == [False, False, True]  # the adapter's horizon truncates
    finally:
        env.close()
    can = gym.make("rlkit2/Can-v0", shift=ShiftConfig(mass=0.5), horizon=2)
    try:
        assert can.unwrapped.cfg.task == "PickPlaceCan" and can.unwrapped.shift.mass == 0.5
    finally:
        can.close()
    with pytest.raises(ConfigError, match="shfit"):
        gym.make("rlkit2/Lift-v0", shfit={"init": 0.1})
    with pytest.raises(ConfigError, match="render_mode"):
        gym.make("rlkit2/Lift-v0", render_mode="human")


def _gl_unavailable_reason() -> str | None:
    """None when robosuite can render offscreen here, else why not (probed in a subprocess: a failed GL
    context can leave the process in a bad state)."""
    import subprocess
    import sys

    code = ("import gymnasium as gym, rlkit2.envs; e = gym.make('rlkit2/Lift-v0', horizon=2, render_mode='rgb_array', "
            "render_width=8, render_height=8); e.reset(seed=0); print(e.render().shape); e.close()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode == 0 and "(8, 8, 3)" in proc.stdout:
        return None
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return f"no offscreen GL backend (MUJOCO_GL={os.environ.get('MUJOCO_GL', '') or 'unset -> egl'}): {tail}"


@pytest.mark.skipif(not HAS_ROBOSUITE, reason="robosuite is not installed")
def test_robosuite_rgb_array_frame():
    reason = _gl_unavailable_reason()
    if reason is not None:
        pytest.skip(reason + "; try MUJOCO_GL=egl or MUJOCO_GL=osmesa")
    env = gym.make("rlkit2/Lift-v0", horizon=5, render_mode="rgb_array", render_width=96, render_height=64)
    try:
        assert "rgb_array" in env.metadata["render_modes"] and env.render_mode == "rgb_array"
        env.reset(seed=0)
        first = env.render()
        assert first.shape == (64, 96, 3) and first.dtype == np.uint8 and first.std() > 0  # not a blank frame
        for _ in range(3):
            env.step(np.array([0, 0, 1, 0, 0, 0, 0], np.float32))  # the arm moves up
        assert not np.array_equal(env.render(), first)
    finally:
        env.close()
