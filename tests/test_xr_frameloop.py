"""The OpenXR rendering path without a runtime: the frame loop's decisions (what to submit, when
to render, which call orders are legal, session stop and re-creation), views to per-eye
matrices checked against pyopenxr's own matrix helpers (hello_xr's algebra), the structures
handed to xrEndFrame, the EGL binding of a real renderer context, and rendering into GL
textures of the swapchain format the loop picks.

No OpenXR runtime exists here (Debian 12 has none; see the README's XR section to run the loop
under Monado): nothing here calls a runtime or pretends to be one. The runtime's session-state
events are fed to the state machines as the OpenXR specification orders them.
"""

from __future__ import annotations

import ast
import ctypes
import inspect
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from theta_xr.errors import FrameLoopError, XrError
from theta_xr.frameloop import (
    GL_RGBA8,
    GL_SRGB8_ALPHA8,
    SPACE_LOCAL,
    SPACE_STAGE,
    SPACE_VIEW,
    FrameEnd,
    FrameLoop,
    LayerView,
    View,
    choose_eye_size,
    choose_reference_space,
    choose_swapchain_format,
    eyes_from_views,
)
from theta_xr.session import Call, SessionLifecycle
from theta_xr.session import SessionState as S

EYE = (640, 720)  # Monado's simulated HMD, per eye
NEAR, FAR = 0.05, 500.0
#: Monado's GL swapchain formats, in its order (RGBA16F, RGB10_A2, SRGB8_ALPHA8, SRGB8,
#: RGBA8, RGB8)
MONADO_GL_FORMATS = [0x881A, 0x8059, GL_SRGB8_ALPHA8, 0x8C41, GL_RGBA8, 0x8051]
#: An asymmetric pair as a headset reports them (wider towards the temple, taller below).
HEADSET_VIEWS = (
    View((-0.032, 1.6, 0.01), (0.0, 0.0, 0.0, 1.0), (-0.96, 0.78, 0.83, -0.96)),
    View((0.032, 1.6, 0.01), (0.0, 0.0, 0.0, 1.0), (-0.78, 0.96, 0.83, -0.96)),
)


def focused() -> SessionLifecycle:
    s = SessionLifecycle()
    s.created()
    s.on_state_changed(S.IDLE)
    assert s.on_state_changed(S.READY) == [Call.BEGIN]
    s.began()
    for state in (S.SYNCHRONIZED, S.VISIBLE, S.FOCUSED):
        s.on_state_changed(state)
    return s


def render_frame(loop: FrameLoop, t: int, views: tuple[View, ...] = HEADSET_VIEWS) -> FrameEnd:
    """One frame in hello_xr's order, every call reported to the loop, as
    OpenXRRenderLoop.frame makes them (the runtime saying shouldRender)."""
    loop.waited(True, t)
    loop.began()
    if loop.should_render and loop.located(views, True, True):
        for eye in range(len(views)):
            loop.acquired(eye)
            loop.image_waited(eye)
            loop.released(eye)
    end = loop.end()
    loop.ended(end)
    return end


# -- choices ----------------------------------------------------------------------------------
def test_swapchain_format_prefers_srgb_then_rgba8() -> None:
    assert choose_swapchain_format(MONADO_GL_FORMATS) == GL_SRGB8_ALPHA8
    assert choose_swapchain_format([0x881A, GL_RGBA8]) == GL_RGBA8
    with pytest.raises(XrError, match="0x881a"):
        choose_swapchain_format([0x881A, 0x8059])


def test_eye_size_follows_the_runtime_within_its_maximum() -> None:
    assert choose_eye_size(EYE, EYE) == EYE
    assert choose_eye_size((1832, 1920), (4096, 4096), 0.5) == (916, 960)
    assert choose_eye_size((1832, 1920), (2000, 2000), 1.5) == (2000, 2000)
    with pytest.raises(XrError, match="positive"):
        choose_eye_size(EYE, EYE, 0.0)


def test_reference_space_is_stage_where_offered_else_local() -> None:
    assert choose_reference_space([SPACE_VIEW, SPACE_LOCAL, SPACE_STAGE]) == SPACE_STAGE
    assert choose_reference_space([SPACE_VIEW, SPACE_LOCAL]) == SPACE_LOCAL


# -- views to matrices -------------------------------------------------------------------------
def test_projection_from_view_fov_matches_pyopenxrs_matrix_helper() -> None:
    xr = pytest.importorskip("xr", reason="pyopenxr is not installed")
    from xr.utils.matrix4x4f import GraphicsAPI, Matrix4x4f

    for eye, view in zip(eyes_from_views(HEADSET_VIEWS, EYE, NEAR, FAR), HEADSET_VIEWS):
        expected = Matrix4x4f.create_projection_fov(GraphicsAPI.OPENGL, xr.Fovf(*view.fov),
                                                    NEAR, FAR).as_numpy()
        np.testing.assert_allclose(eye.projection, expected, rtol=1e-5, atol=1e-6)
        # a point on each edge of the field of view lands on that edge of clip space
        left, right, up, down = view.fov
        for angle_x, angle_y, ndc in ((left, 0.0, (-1, None)), (right, 0.0, (1, None)),
                                      (0.0, up, (None, 1)), (0.0, down, (None, -1))):
            d = 3.0
            p = eye.projection @ np.array([math.tan(angle_x) * d, math.tan(angle_y) * d, -d, 1])
            if ndc[0] is not None:
                assert p[0] / p[3] == pytest.approx(ndc[0])
            if ndc[1] is not None:
                assert p[1] / p[3] == pytest.approx(ndc[1])


def test_view_matrix_is_the_inverse_of_the_eye_pose() -> None:
    xr = pytest.importorskip("xr", reason="pyopenxr is not installed")
    from xr.utils.matrix4x4f import Matrix4x4f

    turned = View((0.4, 1.7, -0.2), (0.0, math.sin(math.pi / 8), 0.0, math.cos(math.pi / 8)),
                  (-0.74, 0.74, 0.78, -0.78))  # 45 degrees to the left
    (eye,) = eyes_from_views([turned], EYE)
    pose = Matrix4x4f.create_translation_rotation_scale(
        xr.Vector3f(*turned.position), xr.Quaternionf(*turned.orientation), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(eye.view, pose.invert_rigid_body().as_numpy(), atol=1e-6)
    ahead = np.array([0.4 - 2 * math.sin(math.pi / 4), 1.7, -0.2 - 2 * math.cos(math.pi / 4), 1])
    np.testing.assert_allclose(eye.view @ ahead, (0.0, 0.0, -2.0, 1.0), atol=1e-9)
    assert eye.position == pytest.approx(turned.position)


# -- the frame loop ---------------------------------------------------------------------------
def test_a_visible_frame_submits_one_projection_layer_of_both_eyes() -> None:
    loop = FrameLoop(focused(), EYE)
    end = render_frame(loop, 1_000_000)
    assert end.display_time == 1_000_000 and end.layer_count == 1
    assert end.views == (LayerView(HEADSET_VIEWS[0], 0, (0, 0, 640, 720)),
                         LayerView(HEADSET_VIEWS[1], 1, (0, 0, 640, 720)))
    assert (loop.frames, loop.frames_rendered, loop.frames_without_layers) == (1, 1, 0)


@pytest.mark.parametrize("state", [S.FOCUSED, S.VISIBLE])
def test_should_render_false_submits_no_layers(state: S) -> None:
    lifecycle = focused()
    if state is S.VISIBLE:
        lifecycle.on_state_changed(S.VISIBLE)
    loop = FrameLoop(lifecycle, EYE)
    loop.waited(False, 5)
    loop.began()
    assert not loop.should_render
    with pytest.raises(FrameLoopError, match="not to render"):
        loop.located(HEADSET_VIEWS, True, True)
    end = loop.end()
    assert end == FrameEnd(5) and end.layer_count == 0
    loop.ended(end)
    assert loop.frames_without_layers == 1
    assert render_frame(loop, 6).layer_count == 1  # and the next frame renders again


def test_synchronized_but_not_visible_submits_no_layers_even_if_asked() -> None:
    lifecycle = focused()
    lifecycle.on_state_changed(S.VISIBLE)
    lifecycle.on_state_changed(S.SYNCHRONIZED)
    loop = FrameLoop(lifecycle, EYE)
    loop.waited(True, 7)
    loop.began()
    assert not loop.should_render
    assert loop.end().layer_count == 0


def test_views_without_valid_poses_submit_no_layers() -> None:
    loop = FrameLoop(focused(), EYE)
    loop.waited(True, 9)
    loop.began()
    assert not loop.located(HEADSET_VIEWS, True, False)  # orientation lost
    with pytest.raises(FrameLoopError, match="without located views"):
        loop.acquired(0)
    assert loop.end().layer_count == 0


def test_calls_out_of_order_are_refused_before_the_runtime_sees_them() -> None:
    loop = FrameLoop(focused(), EYE)
    with pytest.raises(FrameLoopError, match="xrBeginFrame") as err:
        loop.began()
    assert err.value.expected == "after xrWaitFrame" and err.value.actual == "between frames"
    with pytest.raises(FrameLoopError, match="xrEndFrame"):
        loop.end()
    loop.waited(True, 1)
    with pytest.raises(FrameLoopError, match="xrWaitFrame"):
        loop.waited(True, 2)
    loop.began()
    with pytest.raises(FrameLoopError, match="number of views"):
        loop.located(HEADSET_VIEWS[:1], True, True)
    loop.located(HEADSET_VIEWS, True, True)
    with pytest.raises(FrameLoopError, match="xrReleaseSwapchainImage"):
        loop.released(0)  # never acquired
    loop.acquired(0)
    with pytest.raises(FrameLoopError, match="xrAcquireSwapchainImage"):
        loop.acquired(0)
    with pytest.raises(FrameLoopError, match="no such eye"):
        loop.acquired(2)
    with pytest.raises(FrameLoopError, match="not released") as held:
        loop.end()
    assert held.value.actual == "eyes [0]"
    loop.image_waited(0)
    loop.released(0)
    end = loop.end()  # one eye rendered of two: nothing half-made is submitted
    assert end.layer_count == 0


def test_no_frames_without_a_running_session() -> None:
    lifecycle = SessionLifecycle()
    lifecycle.created()
    lifecycle.on_state_changed(S.IDLE)
    loop = FrameLoop(lifecycle, EYE)
    with pytest.raises(FrameLoopError, match="running") as err:
        loop.waited(True, 1)
    assert err.value.actual == "IDLE"


def test_session_stop_and_re_creation_in_the_same_process() -> None:
    """The runtime stops the session mid-frame, exits it, and a new session renders again:
    the calls the lifecycle asks for, in the order the glue makes them."""
    lifecycle = focused()
    loop = FrameLoop(lifecycle, EYE)
    for t in range(3):
        assert render_frame(loop, t).layer_count == 1
    loop.waited(True, 3)
    loop.began()  # the runtime's events arrive before this frame ends
    assert lifecycle.on_state_changed(S.VISIBLE) == []
    assert not lifecycle.input_focused and loop.should_render
    lifecycle.on_state_changed(S.SYNCHRONIZED)
    assert not loop.should_render
    assert lifecycle.on_state_changed(S.STOPPING) == [Call.END]
    lifecycle.ended()  # xrEndSession
    loop.reset()
    with pytest.raises(FrameLoopError, match="running"):
        loop.waited(True, 4)
    lifecycle.on_state_changed(S.IDLE)
    assert lifecycle.on_state_changed(S.EXITING) == [Call.DESTROY]
    assert not lifecycle.restart  # told to exit: a new session only when the app asks
    lifecycle.destroyed()  # xrDestroySession (swapchains first)
    lifecycle.created()  # restart(): xrCreateSession again, same instance, same process
    second = FrameLoop(lifecycle, EYE)
    lifecycle.on_state_changed(S.IDLE)
    assert lifecycle.on_state_changed(S.READY) == [Call.BEGIN]
    lifecycle.began()
    lifecycle.on_state_changed(S.SYNCHRONIZED)
    assert render_frame(second, 10).layer_count == 0  # synchronized: frames, no layers
    lifecycle.on_state_changed(S.VISIBLE)
    assert render_frame(second, 11).layer_count == 1
    assert lifecycle.sessions_created == 2 and loop.frames_rendered == 3


def test_losing_the_session_mid_frame_ends_then_destroys() -> None:
    lifecycle = focused()
    loop = FrameLoop(lifecycle, EYE)
    loop.waited(True, 1)
    assert lifecycle.on_state_changed(S.LOSS_PENDING) == [Call.END, Call.DESTROY]
    assert lifecycle.restart  # lost, not ended by the user: re-create at once
    lifecycle.ended()
    loop.reset()
    lifecycle.destroyed()
    assert not lifecycle.exists and loop.phase.name == "IDLE"


# -- the structures handed to the runtime -------------------------------------------------------
def test_frame_end_structures_carry_the_layer_or_none() -> None:
    xr = pytest.importorskip("xr", reason="pyopenxr is not installed")
    from theta_xr.xrstructs import FrameEndStructs, view_from_xr, view_to_xr

    pose, fov = view_to_xr(HEADSET_VIEWS[1])
    located = xr.View(pose=pose, fov=fov)
    back = view_from_xr(located)
    assert back.position == pytest.approx(HEADSET_VIEWS[1].position)
    assert back.fov == pytest.approx(HEADSET_VIEWS[1].fov)
    chains = [xr.Swapchain(), xr.Swapchain()]
    space = xr.Space()
    none = FrameEndStructs(FrameEnd(42), chains, space)
    assert none.info.layer_count == 0 and none.info.display_time == 42
    loop = FrameLoop(focused(), EYE)
    end = render_frame(loop, 43)
    full = FrameEndStructs(end, chains, space)
    assert full.info.layer_count == 1 and full.info.display_time == 43
    layer = full.layer
    assert layer.view_count == 2
    assert xr.StructureType(layer.type) == xr.StructureType.COMPOSITION_LAYER_PROJECTION
    header = ctypes.cast(full.info._layers[0], ctypes.POINTER(xr.CompositionLayerBaseHeader))
    assert xr.StructureType(header.contents.type) == \
        xr.StructureType.COMPOSITION_LAYER_PROJECTION
    for i in range(2):
        pv = layer._views[i]
        assert (pv.sub_image.image_rect.extent.width,
                pv.sub_image.image_rect.extent.height) == EYE
        assert pv.fov.angle_left == pytest.approx(HEADSET_VIEWS[i].fov[0])
        assert pv.pose.position.x == pytest.approx(HEADSET_VIEWS[i].position[0])


def test_openxr_glue_names_only_what_pyopenxr_has() -> None:
    """openxr.py cannot be imported without a runtime; every ``xr.`` name it and xrstructs.py
    use must exist in the installed pyopenxr, so a typo cannot wait for a headset to show."""
    xr = pytest.importorskip("xr", reason="pyopenxr is not installed")
    src = Path(__file__).parents[1] / "src" / "theta_xr"
    missing = []

    def resolve(node: ast.expr) -> object | None:
        chain = []
        while isinstance(node, ast.Attribute):
            chain.append(node.attr)
            node = node.value
        if not (isinstance(node, ast.Name) and node.id == "xr"):
            return None
        obj: object = xr
        for name in reversed(chain):
            if not hasattr(obj, name):
                missing.append(f"xr.{'.'.join(reversed(chain))}")
                return None
            obj = getattr(obj, name)
        return obj

    calls = 0
    for module in ("openxr.py", "xrstructs.py"):
        for node in ast.walk(ast.parse((src / module).read_text())):
            if isinstance(node, ast.Attribute):
                resolve(node)
            if isinstance(node, ast.Call) and node.keywords:
                target = resolve(node.func)
                if target is None:
                    continue
                params = inspect.signature(target).parameters  # type: ignore[arg-type]
                calls += 1
                for kw in node.keywords:  # keyword arguments the function really takes
                    if kw.arg is not None and kw.arg not in params:
                        missing.append(f"{module}: {ast.unparse(node.func)}({kw.arg}=)")
    assert missing == []
    assert calls > 30


# -- the renderer's side: EGL binding and swapchain images ------------------------------------
@pytest.fixture(scope="module")
def renderer() -> Iterator[object]:
    pytest.importorskip("moderngl", reason="the xr extra is not installed")
    from theta_xr.errors import GraphicsUnavailableError
    from theta_xr.renderer import ModernGLRenderer

    try:
        r = ModernGLRenderer(eye_size=(48, 54), samples=4)
    except GraphicsUnavailableError as exc:
        pytest.skip(f"no EGL OpenGL 4.5 context here: {exc}")
    yield r
    r.close()


def test_egl_binding_names_the_renderers_context(renderer: object) -> None:
    xr = pytest.importorskip("xr", reason="pyopenxr is not installed")
    from theta_xr.egl import current_egl, make_current
    from theta_xr.xrstructs import egl_graphics_binding

    handles = current_egl()
    assert handles.display and handles.context and handles.get_proc_address
    assert handles.config and handles.config_id > 0  # the config the context was made with
    make_current(handles)
    assert current_egl() == handles
    binding = egl_graphics_binding(handles)
    assert xr.StructureType(binding.type) == xr.StructureType.GRAPHICS_BINDING_EGL_MNDX
    addr = [ctypes.cast(getattr(binding, f), ctypes.c_void_p).value
            for f in ("display", "config", "context", "get_proc_address")]
    assert addr == [handles.display, handles.config, handles.context, handles.get_proc_address]
    # what the runtime will call it for: a GL entry point, through our eglGetProcAddress
    assert binding.get_proc_address(b"glBlitFramebuffer")


def test_each_eye_renders_into_swapchain_format_textures_by_gl_name(renderer: object) -> None:
    """The loop's render-to-texture: textures of the chosen swapchain format, known only by GL
    name (as xrEnumerateSwapchainImages gives them), wrapped, and each eye copied in."""
    from theta_ecs import World
    from theta_ecs.interfaces import Pose
    from theta_ecs.stdcomponents import Color, Position, Rotation, Scale
    from theta_xr.components import MeshHandle
    from theta_xr.renderer import ModernGLRenderer

    assert isinstance(renderer, ModernGLRenderer)
    world = World()
    renderer.instances.clear()
    renderer.attach(world)
    world.spawn_batch({Position: np.array([[0.0, 1.6, -1.5]], np.float32),
                       Rotation: np.array([[0, 0, 0, 1]], np.float32),
                       Scale: np.full((1, 3), 0.3, np.float32),
                       Color: np.array([[255, 40, 40, 255]], np.uint8),
                       MeshHandle: np.zeros(1, np.uint16)})
    size = renderer.eye_size
    views = [View((x, 1.6, 0.0), Pose().orientation, (-0.74, 0.74, 0.78, -0.78))
             for x in (-0.0325, 0.0325)]
    renderer.draw(eyes_from_views(views, size))
    fmt = choose_swapchain_format(MONADO_GL_FORMATS)
    chains = [[renderer.ctx.texture(size, 4, internal_format=fmt) for _ in range(3)]
              for _ in range(2)]
    targets = [renderer.external_targets([t.glo for t in chain]) for chain in chains]
    try:
        for eye in range(2):
            renderer.copy_to(eye, targets[eye][1])  # the image index acquire returned
            raw = np.frombuffer(chains[eye][1].read(), np.uint8).reshape(size[1], size[0], 4)
            got = raw[::-1, :, :3]
            assert np.array_equal(got, renderer.read_eye(eye))  # sRGB bytes as written
            assert (got[..., 0] > 150).sum() > 20
            assert not np.frombuffer(chains[eye][0].read(), np.uint8).any()  # others untouched
        left, right = (renderer.read_eye(e)[..., 0] > 150 for e in range(2))
        assert np.nonzero(left)[1].mean() > np.nonzero(right)[1].mean()  # disparity
    finally:
        renderer.instances.clear()
        for fbos in targets:
            for fbo in fbos:
                for tex in fbo.color_attachments:
                    tex.release()
                fbo.release()
    assert len(chains[0][1].read()) == size[0] * size[1] * 4  # still the owner's texture


def test_run_openxr_without_a_runtime_says_why_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("xr", reason="pyopenxr is not installed")
    from theta_xr.run_openxr import main

    code = main(["--seconds", "0.1"])
    err = capsys.readouterr().err
    if code == 0:
        pytest.skip("an OpenXR runtime is active on this host")
    assert code == 2 and "no OpenXR runtime" in err and "monado-service" in err
    assert "Traceback" not in err
