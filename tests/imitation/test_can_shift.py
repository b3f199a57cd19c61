"""PickPlaceCan under the initial-state shift: the widened placement stays inside bin 1 (before the fix, at
s = 0.1, 6 of 30 cans started with their centre outside the bin and 6 of 30 fell below its floor), the bin-2
target markers stay put, and the shift still widens the can's start distribution."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("robosuite")

from rlkit2.envs.robosuite import RobosuiteEnvConfig, ShiftConfig, make_robosuite_env  # noqa: E402

SEEDS = range(30)


def _bin1_interior(rs) -> tuple[np.ndarray, np.ndarray, float]:
    """bin 1's interior (x/y low, high) and floor height, read from the compiled model's geoms."""
    m = rs.sim.model
    body = m.body_name2id("bin1")
    pos = np.asarray(rs.sim.data.body_xpos[body])
    geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] == body and m.geom_contype[g] != 0]
    gpos, gsize = np.asarray(m.geom_pos[geoms]), np.asarray(m.geom_size[geoms])
    floor = int(np.argmax(gsize[:, 0] * gsize[:, 1] * (np.abs(gpos[:, 2]) < 1e-9)))
    half = [min(abs(p[i]) - s[i] for p, s in zip(gpos, gsize, strict=True) if abs(p[i]) > s[i]) for i in (0, 1)]
    return pos[:2] - half, pos[:2] + half, float(pos[2] + gsize[floor, 2])


def _can_starts(shift: float) -> tuple[np.ndarray, np.ndarray, object]:
    """(initial can positions, positions 3 zero-action steps later, env) over SEEDS."""
    env = make_robosuite_env(RobosuiteEnvConfig(task="PickPlaceCan", horizon=5, shift=ShiftConfig(init=shift)),
                             seed=0)
    rs = env.unwrapped_robosuite
    body = rs.obj_body_id["Can"]
    start, later = [], []
    for seed in SEEDS:
        env.reset(seed=seed)
        start.append(rs.sim.data.body_xpos[body].copy())
        for _ in range(3):
            env.step(np.zeros(env.action_dim, np.float32))
        later.append(rs.sim.data.body_xpos[body].copy())
    return np.stack(start), np.stack(later), env


@pytest.fixture(scope="module")
def starts():
    out = {}
    for s in (0.0, 0.1, 0.3):
        start, later, env = _can_starts(s)
        out[s] = (start, later, env)
    yield out
    for _, _, env in out.values():
        env.close()


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.3])
def test_cans_start_inside_bin1(starts, shift):
    start, later, env = starts[shift]
    rs = env.unwrapped_robosuite
    lo, hi, floor = _bin1_interior(rs)
    r = float(rs.objects[rs.object_id].horizontal_radius)
    outside = ((start[:, :2] - r < lo) | (start[:, :2] + r > hi)).any(1)
    assert not outside.any(), f"{int(outside.sum())}/{len(start)} cans overlap bin 1's walls: {start[outside]}"
    assert (start[:, 2] >= floor).all() and (later[:, 2] >= floor).all(), (floor, start[:, 2].min(),
                                                                           later[:, 2].min())
    assert np.abs(later - start).max() < 0.01  # resting on the floor, not falling or pushed by a wall


def test_shift_still_widens_the_can_start(starts):
    nominal, shifted = starts[0.0][0][:, :2], starts[0.1][0][:, :2]
    width = np.ptp(shifted, 0) - np.ptp(nominal, 0)
    assert (width > 0.03).all(), width
    assert (shifted.std(0) > 1.1 * nominal.std(0)).all(), (nominal.std(0), shifted.std(0))


def test_bin2_target_markers_are_not_shifted(starts):
    samplers = starts[0.3][2].unwrapped_robosuite.placement_initializer.samplers
    visual = [s for name, s in samplers.items() if name.startswith("Visual")]
    assert len(visual) == 4
    for s in visual:  # robosuite puts each marker at the centre of its quarter of bin 2: a point range
        assert s.x_range[0] == s.x_range[1] and s.y_range[0] == s.y_range[1], (s.name, s.x_range, s.y_range)


def test_can_object_layout_is_the_object_state_order(starts):
    """`object_layout()` (what demo files record and are checked against) is the order robosuite concatenates
    the can's sub-observations into the "object" observation."""
    env = starts[0.0][2]
    env.step(np.zeros(env.action_dim, np.float32))
    layout, raw = env.object_layout(), env._last_raw
    assert {n for n, _ in layout} == {"Can_pos", "Can_quat", "Can_to_robot0_eef_pos", "Can_to_robot0_eef_quat"}
    assert sum(k for _, k in layout) == env.obs_slices["object"].stop - env.obs_slices["object"].start == 14
    np.testing.assert_array_equal(np.concatenate([np.ravel(raw[n]) for n, _ in layout]), raw["object-state"])
