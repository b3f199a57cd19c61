"""BC with image observations: robomimic image keys read as uint8, encoded by a small CNN, learned from.

Synthetic frames, not rendered ones: rendering robosuite cameras needs EGL or OSMesa, which the test machines
lack. A bright square on the left of a 32x32 RGB frame means action -1, on the right +1; the low-dim obs is
noise. BC with the image key learns the rule (held-out frames); without it, it cannot.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit2.agents.bc import BCConfig, ImageReplay, make_agent
from rlkit2.core import ConfigError, DataError
from rlkit2.data.robomimic import Demo, read_robomimic, to_transitions
from rlkit2.data.robomimic_writer import write_robomimic
from rlkit2.registry import EnvSpec
from rlkit2.replay import TransitionReplay

KEY = "agentview_image"


def _frames(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n, 32, 32, 3) uint8 frames and their side (-1 left, +1 right)."""
    frames = rng.integers(0, 40, size=(n, 32, 32, 3), dtype=np.uint8)
    side = rng.choice([-1.0, 1.0], size=n)
    for i in range(n):
        x = int(rng.integers(1, 9)) if side[i] < 0 else int(rng.integers(17, 25))
        y = int(rng.integers(0, 25))
        frames[i, y:y + 7, x:x + 7] = 255
    return frames, side


def _demo(T: int, rng: np.random.Generator) -> Demo:
    frames, side = _frames(T, rng)
    low = rng.normal(size=(T, 3))  # uninformative low-dim obs
    actions = np.stack([side, np.zeros(T)], axis=1)
    dones = np.zeros(T)
    dones[-1] = 1
    return Demo({"robot0_eef_pos": low, KEY: frames}, actions, dones, dones, {"robot0_eef_pos": low}, None)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = write_robomimic(tmp_path_factory.mktemp("img") / "images.hdf5", [_demo(10, rng) for _ in range(30)])
    ds = read_robomimic(path, obs_keys=["robot0_eef_pos"], image_keys=[KEY])
    arrays = to_transitions(ds, ["robot0_eef_pos"], image_keys=[KEY])
    frames, side = _frames(200, np.random.default_rng(1))
    return path, ds, arrays, (rng.normal(size=(200, 3)).astype(np.float32), frames, side)


def test_reader_keeps_images_uint8_and_out_of_the_low_dim_vector(data):
    path, ds, arrays, _ = data
    d = ds.demos[0]
    assert d.obs[KEY].dtype == np.uint8 and d.obs[KEY].shape == (10, 32, 32, 3)
    assert KEY not in (d.next_obs or {})  # next-step images are not read
    assert arrays["observations"].shape == (300, 3) and arrays[f"images/{KEY}"].dtype == np.uint8
    assert arrays[f"images/{KEY}"].shape == (300, 32, 32, 3)
    assert KEY not in read_robomimic(path).demos[0].obs  # default keys: image-like ones left out
    with pytest.raises(DataError, match="are images"):
        to_transitions(ds, ["robot0_eef_pos", KEY])
    with pytest.raises(DataError, match="must be uint8"):
        read_robomimic(path, image_keys=["robot0_eef_pos"])


def _train(arrays, image_keys: list[str], updates: int = 300) -> object:
    torch.manual_seed(0)
    cfg = BCConfig(head="deterministic", hidden=[64, 64], batch_size=64, image_keys=image_keys,
                   image_channels=[16, 16], image_feature_dim=32)
    agent = make_agent(cfg, EnvSpec(3, 2), ImageReplay.from_transitions(arrays))
    for _ in range(updates):
        agent.learner.step()
    return agent


def _held_out_error(agent, held_out, images: bool) -> float:
    low, frames, side = held_out
    with torch.no_grad():
        pred = agent.learner.policy(torch.as_tensor(low), {KEY: torch.as_tensor(frames)} if images else None)
    return float(np.abs(pred[:, 0].numpy() - side).mean())  # chance (predicting 0): 1.0


def test_bc_learns_from_images_and_not_without(data):
    _, _, arrays, held_out = data
    with_images = _held_out_error(_train(arrays, [KEY]), held_out, images=True)
    without = _held_out_error(_train(arrays, []), held_out, images=False)
    print(f"held-out |action error|: with {KEY} {with_images:.3f}, without {without:.3f} (chance 1.0)")
    assert with_images < 0.2 < 0.7 < without


def test_image_keys_are_honoured_or_refused(data):
    _, _, arrays, _ = data
    with pytest.raises(ConfigError, match="image_keys"):
        BCConfig(image_keys=[KEY, KEY])
    with pytest.raises(ConfigError, match="image_pool"):
        BCConfig(image_pool="max")
    plain = TransitionReplay.from_arrays(arrays)  # no images: the option cannot be honoured
    with pytest.raises(ConfigError, match="carry no images"):
        make_agent(BCConfig(image_keys=[KEY]), EnvSpec(3, 2), plain)
    agent = make_agent(BCConfig(image_keys=[KEY], hidden=[8]), EnvSpec(3, 2), ImageReplay.from_transitions(arrays))
    with pytest.raises(ConfigError, match="call it with images"):
        agent.learner.policy(torch.zeros(1, 3))
    with pytest.raises(DataError, match="fixed demo dataset"):
        agent.learner.replay.add(np.zeros(3), np.zeros(2), 0.0, np.zeros(3), False)
    agent.learner.step()  # the Gaussian head trains on images too
    from omegaconf import OmegaConf

    from rlkit2.run.imitation import ImitationPhase

    cfg = OmegaConf.create({"agent": {"name": "bc", "image_keys": [KEY]}, "trainer": {"distributed": False}})
    with pytest.raises(ConfigError, match="renders no camera observations"):
        ImitationPhase(cfg, None)  # type: ignore[arg-type]
