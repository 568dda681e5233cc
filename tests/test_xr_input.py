"""Input providers: simulated motions and timelines, desktop controls, OpenXR's lifecycle and
its fall back when no runtime exists (as on these machines)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theta_ecs import plugins
from theta_ecs.errors import BackendUnavailableError
from theta_ecs.interfaces import InputProvider
from theta_xr.controls import FlyControls
from theta_xr.errors import InputPathError, SessionStateError
from theta_xr.fallback import open_input
from theta_xr.session import Call, SessionLifecycle, SessionState
from theta_xr.simulated import ButtonTimeline, SimulatedInputProvider, record_path

S = SessionState


def forward(q: tuple[float, float, float, float]) -> np.ndarray:
    from theta_xr.math3d import quat_to_matrices

    return quat_to_matrices(q)[0] @ np.array([0.0, 0.0, -1.0])


def test_stationary_and_orbit_motions() -> None:
    still = SimulatedInputProvider(motion="stationary")
    assert still.poll(0.0).head == still.poll(7.5).head
    orbit = SimulatedInputProvider(motion="orbit", orbit_center=(0.0, 1.0, 0.0),
                                   orbit_radius=3.0, orbit_period=8.0, orbit_height=1.0)
    for t in (0.0, 1.0, 2.0, 5.5):
        head = orbit.poll(t).head
        pos = np.array(head.position)
        assert np.linalg.norm(pos - (0.0, 1.0, 0.0)) == pytest.approx(3.0)
        # always looking at the centre
        np.testing.assert_allclose(forward(head.orientation), -pos / 3.0 + (0, 1 / 3, 0),
                                   atol=1e-9)
    assert orbit.poll(2.0).head.position[0] == pytest.approx(3.0)  # a quarter turn


def test_button_timeline_drives_buttons_and_axes() -> None:
    p = SimulatedInputProvider(motion="stationary",
                               buttons=[("right/trigger", 0.5, 1.0), ("left/grip", 0.2, 0.3)])
    assert p.poll(0.4).buttons == {"left/grip": False, "right/trigger": False}
    assert p.poll(0.5).buttons["right/trigger"] and p.poll(0.5).axes["right/trigger"] == 1.0
    assert not p.poll(1.0).buttons["right/trigger"]  # end is exclusive
    assert p.poll(0.25).buttons["left/grip"]
    with pytest.raises(ValueError, match="start < end"):
        ButtonTimeline([("x", 1.0, 1.0)])


def test_recorded_path_plays_back_interpolated(tmp_path: Path) -> None:
    q_turn = (0.0, math.sin(math.pi / 4), 0.0, math.cos(math.pi / 4))  # 90 degrees about y
    doc = {"keys": [{"t": 0.0, "head": [0, 1.6, 0, 0, 0, 0, 1], "right": [0.2, 1, -0.3, 0, 0,
                                                                           0, 1]},
                    {"t": 2.0, "head": [2, 1.6, 0, *q_turn], "right": [0.2, 1, -0.3, 0, 0,
                                                                         0, 1]}],
           "buttons": [{"button": "right/trigger", "start": 1.0, "end": 1.5}]}
    path = tmp_path / "path.json"
    path.write_text(json.dumps(doc))
    p = SimulatedInputProvider(motion="recorded", path=path)
    mid = p.poll(1.0)
    assert mid.head.position == pytest.approx((1.0, 1.6, 0.0))
    assert np.linalg.norm(mid.head.orientation) == pytest.approx(1.0)
    assert mid.buttons["right/trigger"] and "left" not in mid.hands
    assert p.poll(9.0).head.position == pytest.approx((2.0, 1.6, 0.0))  # held after the end
    assert p.poll(-1.0).head.position == pytest.approx((0.0, 1.6, 0.0))


@pytest.mark.parametrize(("doc", "problem"), [
    ({"keys": []}, "non-empty"),
    ({"keys": [{"t": 0, "left": [0] * 6 + [1]}]}, "'head' track"),
    ({"keys": [{"t": 1, "head": [0] * 6 + [1]}, {"t": 0, "head": [0] * 6 + [1]}]}, "increasing"),
    ({"keys": [{"t": 0, "head": [0, 0, 0, 0, 0, 0, 0]}]}, "zero quaternion"),
    ({"keys": [{"t": 0, "head": [0, 0, 0, 1]}]}, "7 finite"),
    ({"keys": [{"t": 0, "head": [0] * 6 + [1]}, {"t": 1, "head": [0] * 6 + [1], "right":
                                                 [0] * 6 + [1]}]}, "missing from some keys"),
    ({"keys": [{"head": [0] * 6 + [1]}]}, "time 't'"),
    ({"keys": [{"t": 0, "head": [0] * 6 + [1]}], "buttons": [{"button": "x"}]}, "buttons"),
])
def test_bad_recorded_paths_are_refused_with_the_reason(doc: dict[str, object],
                                                        problem: str) -> None:
    with pytest.raises(InputPathError, match=problem):
        SimulatedInputProvider(motion="recorded", path=doc)


def test_unreadable_path_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InputPathError, match="JSON"):
        SimulatedInputProvider(motion="recorded", path=tmp_path / "bad.json")


def test_fly_controls_move_in_the_view_plane() -> None:
    c = FlyControls((0.0, 1.7, 0.0), speed=2.0)
    f = c.update(0.0, 0.5, {"w"}, (0.0, 0.0), ())
    assert f.head.position == pytest.approx((0.0, 1.7, -1.0))
    # turn left 90 degrees by mouse, then forward is -x
    c.update(0.5, 0.0, (), (-(math.pi / 2) / c.sensitivity, 0.0), ())
    f = c.update(1.0, 0.5, {"w"}, (0.0, 0.0), {0})
    assert f.head.position == pytest.approx((-1.0, 1.7, -1.0))
    np.testing.assert_allclose(forward(f.hands["right"].orientation), (-1, 0, 0), atol=1e-9)
    assert f.buttons["right/trigger"] and not f.buttons["right/grip"]


def run_to_focused(s: SessionLifecycle) -> None:
    s.created()
    assert s.on_state_changed(S.IDLE) == []
    assert s.on_state_changed(S.READY) == [Call.BEGIN]
    s.began()
    for state in (S.SYNCHRONIZED, S.VISIBLE, S.FOCUSED):
        assert s.on_state_changed(state) == []


def test_session_lifecycle_from_idle_to_focused_and_exit() -> None:
    s = SessionLifecycle()
    run_to_focused(s)
    assert s.input_focused and s.submit_layers(True) and not s.submit_layers(False)
    s.on_state_changed(S.VISIBLE)
    assert not s.input_focused and s.submit_layers(True)
    s.on_state_changed(S.SYNCHRONIZED)
    assert s.frame_loop and not s.submit_layers(True)  # running, but nothing to show
    assert s.on_state_changed(S.STOPPING) == [Call.END]
    s.ended()
    assert not s.frame_loop
    s.on_state_changed(S.IDLE)
    assert s.on_state_changed(S.EXITING) == [Call.DESTROY]
    s.destroyed()
    # and a new session in the same process
    run_to_focused(s)
    assert s.sessions_created == 2 and s.input_focused


def test_session_loss_ends_then_destroys() -> None:
    s = SessionLifecycle()
    run_to_focused(s)
    assert s.on_state_changed(S.LOSS_PENDING) == [Call.END, Call.DESTROY]
    s.ended()
    s.destroyed()
    assert not s.exists


@pytest.mark.parametrize("bad", [S.FOCUSED, S.STOPPING, S.SYNCHRONIZED])
def test_illegal_session_transitions_are_refused(bad: SessionState) -> None:
    s = SessionLifecycle()
    s.created()
    s.on_state_changed(S.IDLE)
    with pytest.raises(SessionStateError) as err:
        s.on_state_changed(bad)
    assert err.value.actual == bad.name and "READY" in err.value.expected  # type: ignore[operator]
    assert s.state is S.IDLE


def test_session_calls_out_of_order_are_refused() -> None:
    s = SessionLifecycle()
    with pytest.raises(SessionStateError, match="without a session"):
        s.on_state_changed(S.IDLE)
    s.created()
    with pytest.raises(SessionStateError):
        s.created()
    s.on_state_changed(S.IDLE)
    with pytest.raises(SessionStateError, match="READY"):
        s.began()
    with pytest.raises(SessionStateError, match="unknown"):
        s.on_state_changed(42)


def test_openxr_fails_fast_and_input_falls_back_to_simulated(monkeypatch:
                                                              pytest.MonkeyPatch) -> None:
    pytest.importorskip("xr", reason="pyopenxr is not installed")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    try:
        plugins.load_factory("theta.input", "openxr")
    except BackendUnavailableError as exc:
        assert "no OpenXR runtime" in str(exc) and "monado-service" in str(exc)
    else:
        pytest.skip("an OpenXR runtime is active on this host")
    rows = {r.name: r for r in plugins.status(["theta.input"])}
    assert not rows["openxr"].loadable and "no OpenXR runtime" in rows["openxr"].reason
    choice = open_input(motion="stationary")
    assert choice.name == "simulated" and isinstance(choice.provider, InputProvider)
    assert set(choice.skipped) == {"openxr", "desktop"}
    assert "no display" in choice.skipped["desktop"]
    with pytest.raises(BackendUnavailableError, match="no input provider"):
        open_input(("openxr", "desktop"))


def test_a_recorded_path_plays_back_what_was_recorded(tmp_path: Path) -> None:
    live = SimulatedInputProvider(seed=5, motion="wobble", buttons=[("right/grip", 0.5, 1.0)])
    times = [i / 20 for i in range(41)]
    path = tmp_path / "session.json"
    path.write_text(json.dumps(record_path(live, times)))
    replay = SimulatedInputProvider(motion="recorded", path=path)
    for t in times:
        a, b = live.poll(t), replay.poll(t)
        assert b.head.position == pytest.approx(a.head.position)
        assert b.hands["right"].position == pytest.approx(a.hands["right"].position)
        assert b.buttons["right/grip"] == a.buttons["right/grip"]


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(
        st.sampled_from(["t", "head", "left", "right", "keys", "buttons", "button", "start",
                         "end"]), inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=150, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(["keys", "buttons"]), json_values, max_size=2)
       | st.fixed_dictionaries({"keys": st.lists(st.dictionaries(
           st.sampled_from(["t", "head", "right"]), json_values, max_size=3), max_size=4)}))
def test_malformed_path_documents_are_refused_never_crash(doc: dict[str, object]) -> None:
    try:
        p = SimulatedInputProvider(motion="recorded", path=doc)
    except InputPathError:
        return
    frame = p.poll(0.5)  # whatever was accepted plays back with finite, unit poses
    assert all(math.isfinite(v) for v in frame.head.position)
    assert np.linalg.norm(frame.head.orientation) == pytest.approx(1.0)


@pytest.mark.parametrize(("doc", "problem"), [
    ({"keys": [{"t": 10 ** 400, "head": [0] * 6 + [1]}]}, "time 't'"),  # float() overflows
    ({"keys": [{"t": 0, "head": [10 ** 400] + [0] * 5 + [1]}]}, "track 'head'"),
    ({"keys": [{"t": 0, "head": [0] * 6 + [1]}],
      "buttons": [{"button": "x", "start": 0, "end": 10 ** 400}]}, "buttons"),
])
def test_huge_integers_in_a_path_are_refused_typed(doc: dict[str, object], problem: str) -> None:
    with pytest.raises(InputPathError, match=problem):
        SimulatedInputProvider(motion="recorded", path=doc)


def test_a_path_file_nested_too_deep_is_refused_typed(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text('{"keys": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InputPathError, match="JSON"):
        SimulatedInputProvider(motion="recorded", path=tmp_path / "deep.json")


def test_a_quaternion_of_huge_components_plays_back_as_a_unit_rotation() -> None:
    doc = {"keys": [{"t": 0, "head": [0, 0, 0, 0, 1e300, 0, 1e300]}]}
    q = SimulatedInputProvider(motion="recorded", path=doc).poll(0.0).head.orientation
    assert q == pytest.approx((0.0, math.sqrt(0.5), 0.0, math.sqrt(0.5)))


@pytest.mark.parametrize("kwargs", [
    {"motion": "fly"},
    {"motion": "recorded"},
    {"motion": "orbit", "orbit_period": 0.0},  # was a ZeroDivisionError at the first poll
    {"motion": "orbit", "orbit_radius": float("nan")},  # was NaN poses, silently
    {"motion": "orbit", "orbit_radius": 0.0},  # the head at the point it looks at
    {"motion": "orbit", "orbit_center": (0.0, float("inf"), 0.0)},
    {"buttons": [("x", 2.0, 1.0)]},
    {"buttons": [("x", "soon", 1.0)]},  # was a bare ValueError from float()
    {"buttons": [{"button": "x"}]},  # was a KeyError
    {"buttons": [5]},  # was a TypeError
])
def test_a_script_that_cannot_run_is_refused_typed(kwargs: dict[str, object]) -> None:
    from theta_ecs.errors import ThetaError
    from theta_xr.errors import InputScriptError

    with pytest.raises(InputScriptError) as caught:
        SimulatedInputProvider(**kwargs).poll(1.0)  # type: ignore[arg-type]
    assert isinstance(caught.value, ThetaError) and isinstance(caught.value, ValueError)
    assert caught.value.expected is not None
