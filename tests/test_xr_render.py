"""The moderngl renderer on Mesa llvmpipe (EGL): golden images and what the pixels must show.

Goldens live in tests/golden/ and are compared with a small tolerance; llvmpipe is deterministic
on one Mesa version, and on another renderer only the golden comparison is skipped (the pixel
properties still run). ``THETA_UPDATE_GOLDENS=1`` rewrites them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from theta_ecs import World
from theta_ecs.interfaces import Pose, RenderItem
from theta_ecs.stdcomponents import Color, Position, Rotation, Scale

pytest.importorskip("moderngl", reason="the xr extra is not installed")
from PIL import Image

from theta_xr.binding import STANDARD
from theta_xr.camera import stereo_eyes
from theta_xr.components import MeshHandle
from theta_xr.errors import GraphicsUnavailableError, XrError
from theta_xr.meshes import SPHERE
from theta_xr.renderer import ModernGLRenderer

GOLDEN = Path(__file__).parent / "golden"
SIZE = (96, 108)  # one eye, the simulated HMD's aspect
HEAD = Pose((0.0, 0.0, 0.0))
BACKGROUND = np.array([0.05, 0.06, 0.08]) ** (1 / 1) * 255  # clear colour as written


@pytest.fixture(scope="module")
def renderer() -> Iterator[ModernGLRenderer]:
    try:
        r = ModernGLRenderer(eye_size=SIZE, samples=4, cull=True)
    except GraphicsUnavailableError as exc:
        pytest.skip(f"no EGL OpenGL 4.5 context here: {exc}")
    yield r
    r.close()


@pytest.fixture
def fresh(renderer: ModernGLRenderer) -> Iterator[ModernGLRenderer]:
    """The shared renderer with nothing attached (a GL context per test costs ~100 ms)."""
    renderer.instances.clear()
    yield renderer
    renderer.instances.clear()


def _is_llvmpipe(r: ModernGLRenderer) -> bool:
    return "llvmpipe" in r.ctx.info["GL_RENDERER"]


def check_golden(r: ModernGLRenderer, name: str, image: np.ndarray) -> None:
    path = GOLDEN / f"xr_{name}.png"
    if os.environ.get("THETA_UPDATE_GOLDENS"):
        GOLDEN.mkdir(exist_ok=True)
        Image.fromarray(image).save(path, optimize=True)
    if not _is_llvmpipe(r):
        return  # goldens are llvmpipe's; the callers' pixel checks still ran
    golden = np.asarray(Image.open(path).convert("RGB"))
    assert golden.shape == image.shape
    diff = np.abs(golden.astype(np.int16) - image.astype(np.int16))
    assert diff.mean() < 0.5, f"{name}: mean difference {diff.mean():.3f}"
    assert (diff.max(axis=2) > 24).mean() < 0.002, f"{name}: too many pixels differ"


def spawn(world: World, positions: list[tuple[float, float, float]],
          colors: list[tuple[int, int, int, int]], scale: float = 1.0,
          mesh: int = 0) -> np.ndarray:
    n = len(positions)
    return world.spawn_batch({
        Position: np.array(positions, np.float32),
        Rotation: np.tile(np.array([0, 0, 0, 1], np.float32), (n, 1)),
        Scale: np.full((n, 3), scale, np.float32),
        Color: np.array(colors, np.uint8),
        MeshHandle: np.full(n, mesh, np.uint16),
    })


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    assert len(xs), "nothing drawn"
    return float(xs.mean()), float(ys.mean())


def red_mask(img: np.ndarray) -> np.ndarray:
    return (img[..., 0] > 120) & (img[..., 1] < 60) & (img[..., 2] < 60)


def test_stereo_disparity_matches_the_eye_separation(fresh: ModernGLRenderer) -> None:
    world = World()
    fresh.attach(world, (STANDARD,))
    depth = 1.0
    spawn(world, [(0.0, 0.0, -depth)], [(255, 0, 0, 255)], scale=0.2)
    left, right = stereo_eyes(HEAD, size=SIZE)
    fresh.draw((left, right))
    img = fresh.read_stereo()
    lx, ly = centroid(red_mask(img[:, : SIZE[0]]))
    rx, ry = centroid(red_mask(img[:, SIZE[0]:]))
    # a point at depth d seen by eyes 0.065 m apart shifts by f * ipd / d pixels
    f_px = left.projection[0, 0] * SIZE[0] / 2
    expected = f_px * 0.065 / depth
    assert lx - rx == pytest.approx(expected, rel=0.15)
    assert ly == pytest.approx(ry, abs=0.5)
    check_golden(fresh, "disparity", img)


def test_colours_are_srgb_and_lit(fresh: ModernGLRenderer) -> None:
    world = World()
    fresh.attach(world, (STANDARD,))
    spawn(world, [(-0.35, 0.0, -2.0), (0.0, 0.0, -2.0), (0.35, 0.0, -2.0)],
          [(255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255)], scale=0.3)
    fresh.draw(stereo_eyes(HEAD, size=SIZE))
    eye = fresh.read_eye(0).astype(int)
    h = SIZE[1] // 2
    row = eye[h]
    reds = row[(row[:, 0] > 100) & (row[:, 1] < 40)]
    greens = row[(row[:, 1] > 100) & (row[:, 0] < 40)]
    blues = row[(row[:, 2] > 100) & (row[:, 0] < 40)]
    assert len(reds) and len(greens) and len(blues)
    # the front face (normal +z) is lit by the sky term and the light's z: the same shade for all
    assert reds[:, 0].max() == greens[:, 1].max() == blues[:, 2].max()
    assert eye[2, 2].tolist() == eye[-3, -3].tolist()  # background is the clear colour
    check_golden(fresh, "colours", fresh.read_stereo())


def test_culling_drops_what_no_eye_sees(fresh: ModernGLRenderer) -> None:
    world = World()
    fresh.attach(world, (STANDARD,))
    ahead = [(0.0, 0.0, -3.0), (0.5, 0.2, -4.0)]
    behind = [(0.0, 0.0, 3.0), (10.0, 0.0, -1.0), (0.0, 0.0, -1000.0)]
    spawn(world, ahead + behind, [(255, 255, 255, 255)] * 5, scale=0.3)
    stats = fresh.draw(stereo_eyes(HEAD, size=SIZE))
    assert (stats.instances, stats.visible) == (5, 2)
    # turned around, the one behind is seen and the ones ahead are not
    back = Pose((0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0))
    stats = fresh.draw(stereo_eyes(back, size=SIZE))
    assert stats.visible == 1
    assert (fresh.read_eye(0).max(axis=2) > 60).sum() > 15  # a 0.3 m cube 3 m away: ~5x5 px


def test_culling_golden_keeps_what_straddles_an_edge_and_drops_the_rest(
    fresh: ModernGLRenderer,
) -> None:
    """At 3 m the eyes see about +-2.75 m across and +-3.1 m up: cubes across the left, right
    and top edges stay (partly drawn), those past the edges, behind and beyond the far plane
    are culled, and the picture is the one an unculled renderer draws."""
    world = World()
    fresh.attach(world, (STANDARD,))
    kept = [(0.0, 0.0, -3.0), (-2.6, 0.0, -3.0), (2.6, 0.0, -3.0), (0.0, 2.95, -3.0)]
    culled = [(3.5, 0.0, -3.0), (-3.5, 0.0, -3.0), (0.0, 4.0, -3.0), (0.0, 0.0, 2.0),
              (0.0, 0.0, -600.0)]
    colours = [(255, 255, 255, 255), (255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255)]
    spawn(world, kept + culled, colours + [(255, 0, 255, 255)] * len(culled), scale=0.4)
    eyes = stereo_eyes(HEAD, size=SIZE)
    stats = fresh.draw(eyes)
    assert (stats.instances, stats.visible) == (9, 4)
    img = fresh.read_stereo()
    c = img.astype(int)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    assert not ((r > 60) & (b > 60) & (g < 30)).any()  # nothing culled (magenta) shows
    red, green, blue = (r > 100) & (g < 40), (g > 100) & (r < 40), (b > 100) & (r < 40)
    w = SIZE[0]
    for eye in (slice(0, w), slice(w, 2 * w)):  # each cut by its eye's edge, in both eyes
        assert red[:, eye][:, :3].any()
        assert green[:, eye][:, -3:].any()
        assert blue[:2, eye].any()
    check_golden(fresh, "culling", img)
    fresh.instances.clear()
    everything = ModernGLRenderer(eye_size=SIZE, samples=fresh.samples, cull=False)
    try:
        everything.attach(world, (STANDARD,))
        assert everything.draw(eyes).visible == 9
        assert np.array_equal(everything.read_stereo(), img)  # culling changed no pixel
    finally:
        everything.close()


def test_instances_follow_the_columns_after_changes(fresh: ModernGLRenderer) -> None:
    world = World()
    fresh.attach(world, (STANDARD,))
    ents = spawn(world, [(-0.4, 0.0, -2.0), (0.4, 0.0, -2.0), (0.0, 0.4, -2.0)],
                 [(255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255)], scale=0.25)
    eyes = stereo_eyes(HEAD, size=SIZE)
    first = fresh.draw(eyes)
    assert first.rows_uploaded > 0
    idle = fresh.draw(eyes)
    assert idle.rows_uploaded == 0  # nothing changed, nothing sent
    x0, _ = centroid(red_mask(fresh.read_eye(0)))
    world.set(int(ents[0]), Position, (0.0, -0.4, -2.0))  # per-entity write: one row
    moved = fresh.draw(eyes)
    assert moved.rows_uploaded == 1
    x1, y1 = centroid(red_mask(fresh.read_eye(0)))
    assert x1 > x0 + 10 and y1 > SIZE[1] / 2
    world.despawn(int(ents[0]))  # the last row moves into the hole: it must be re-sent
    gone = fresh.draw(eyes)
    assert gone.instances == 2
    img = fresh.read_eye(0)
    assert not red_mask(img).any()
    blue = (img[..., 2] > 120) & (img[..., 0] < 60)
    assert blue.sum() > 20
    world.insert(int(ents[1]), Color, (255, 0, 0, 255))  # the green one turns red
    fresh.draw(eyes)
    check_golden(fresh, "changes", fresh.read_stereo())


def test_meshes_by_handle_and_overlay(fresh: ModernGLRenderer) -> None:
    world = World()
    fresh.attach(world, (STANDARD,))
    spawn(world, [(-0.3, -0.2, -2.0)], [(240, 180, 60, 255)], scale=0.4, mesh=0)
    spawn(world, [(0.3, -0.2, -2.0)], [(240, 180, 60, 255)], scale=0.4, mesh=SPHERE)
    eyes = stereo_eyes(HEAD, size=SIZE)
    fresh.draw(eyes)
    plain = fresh.read_eye(0).copy()
    lit = plain.max(axis=2) > 60
    left_half, right_half = lit[:, : SIZE[0] // 2].sum(), lit[:, SIZE[0] // 2:].sum()
    assert left_half > right_half > 0  # a cube covers more than a sphere of the same size
    fresh.draw(eyes, overlay=["frame 1.00 ms"])
    with_text = fresh.read_eye(0)
    changed = np.abs(with_text.astype(int) - plain.astype(int)).max(axis=2) > 30
    ys, _ = np.nonzero(changed)
    assert len(ys) > 30 and ys.max() < SIZE[1] // 2  # text drawn, near the top
    check_golden(fresh, "meshes_overlay", fresh.read_stereo())


def test_renderer_protocol_with_loose_items(fresh: ModernGLRenderer) -> None:
    model = np.eye(4, dtype=np.float32)
    model[:3, 3] = (0.0, 0.0, -2.0)
    model[:3, :3] *= 0.5
    view = np.eye(4, dtype=np.float32)
    fresh.render([RenderItem(model, (1.0, 0.0, 0.0, 1.0))], [view, view])
    assert red_mask(fresh.read_eye(0)).sum() > 100
    assert fresh.instances == []
    with pytest.raises(XrError, match="eye size"):
        fresh.draw(stereo_eyes(HEAD, size=(32, 32)))


def test_render_system_draws_each_world_step(fresh: ModernGLRenderer) -> None:
    from theta_ecs import Stage

    world = World()
    ents = spawn(world, [(0.0, 0.0, -2.0)], [(255, 0, 0, 255)], scale=0.3)

    def drift(ctx: object) -> None:
        for _, (pos,) in ctx.query(Position):  # type: ignore[attr-defined]
            pos[:, 0] += 0.2

    world.add_system(drift, stage=Stage.SIMULATION, writes=[Position])
    name = fresh.install(world, lambda: stereo_eyes(HEAD, size=SIZE))
    before = fresh.frames
    xs = []
    for _ in range(3):
        world.step()
        xs.append(centroid(red_mask(fresh.read_eye(0)))[0])
    assert fresh.frames == before + 3 and fresh.stats.rows_uploaded == 1
    assert xs[0] < xs[1] < xs[2]  # each frame drew the column the simulation had just moved
    assert name in world.metrics().systems  # timed like any system, in the render stage
    assert len(ents) == 1


def test_single_pass_stereo_draws_what_two_passes_draw(fresh: ModernGLRenderer) -> None:
    from theta_ecs.commandlog import Transform
    from theta_xr.binding import scene_binding
    from theta_xr.fields import cube_field

    world = World()
    cube_field(world, 300, seed=3)
    # and a packed-transform archetype (the editor's), read through the other shader branch
    world.spawn({Transform: (0.2, 1.4, -1.5, 0.0, 0.38, 0.0, 0.92, 0.3, 0.2, 0.3)})
    bindings = (STANDARD, scene_binding("editor"))
    eyes = stereo_eyes(Pose((0.0, 1.5, 0.0)), size=SIZE)
    single = ModernGLRenderer(eye_size=SIZE, samples=4, stereo="single_pass", cull=True)
    try:
        single.attach(world, bindings)
        stats = single.draw(eyes, overlay=["frame 1.00 ms"])
        assert stats.draw_calls == 2  # one per archetype (and mesh), both eyes at once
        one = single.read_stereo().astype(int)
        with pytest.raises(XrError, match="one image"):
            single.eye_textures  # noqa: B018
    finally:
        single.close()
    fresh.attach(world, bindings)
    fresh.draw(eyes, overlay=["frame 1.00 ms"])
    two = fresh.read_stereo().astype(int)
    diff = np.abs(one - two).max(axis=2)
    assert (diff > 24).mean() < 0.001  # the same picture, give or take an edge sample
    assert (two.max(axis=2) > 60).mean() > 0.2
    with pytest.raises(XrError, match="two_pass"):
        ModernGLRenderer(eye_size=SIZE, stereo="multiview")


def test_a_mesh_loaded_from_a_file_is_drawn(fresh: ModernGLRenderer, tmp_path: Path) -> None:
    from theta_xr.errors import MeshError
    from theta_xr.meshes import load

    obj = tmp_path / "tetra.obj"
    obj.write_text("v 0 0.5 0\nv -0.5 -0.5 0.5\nv 0.5 -0.5 0.5\nv 0 -0.5 -0.5\n"
                   "f 1 2 3\nf 1 3 4\nf 1 4 2\nf 2 4 3\n")
    mesh = load(obj)
    assert mesh.name == "tetra" and mesh.indices.shape == (4, 3)
    handle = fresh.meshes.add(mesh)
    world = World()
    fresh.attach(world, (STANDARD,))
    spawn(world, [(0.0, 0.0, -2.0)], [(255, 0, 0, 255)], scale=1.0, mesh=handle)
    fresh.draw(stereo_eyes(HEAD, size=SIZE))
    drawn = red_mask(fresh.read_eye(0)).sum()
    assert drawn > 50
    (tmp_path / "bad.obj").write_text("this is not a mesh\n")
    with pytest.raises(MeshError):
        load(tmp_path / "bad.obj")


def test_default_msaa_is_2x_at_headset_sizes_and_4x_below(fresh: ModernGLRenderer) -> None:
    from theta_xr.renderer import default_samples

    assert default_samples((1832, 1920)) == 2  # the GPU benchmark's eye: 4x missed 90 Hz there
    assert default_samples((1000, 1000)) == 2
    assert default_samples((640, 720)) == 4  # the simulated HMD
    assert default_samples(SIZE) == 4
    big = ModernGLRenderer(eye_size=(1000, 1000))
    try:
        assert big.samples == min(2, big.ctx.max_samples)
    finally:
        big.close()
    small = ModernGLRenderer(eye_size=SIZE)
    try:
        assert small.samples == min(4, small.ctx.max_samples)
    finally:
        small.close()
    assert fresh.samples == 4  # the goldens pin theirs


def test_overlay_shows_the_worlds_network_and_voice_figures(fresh: ModernGLRenderer) -> None:
    from theta_voice.diagnostics import DiagnosticsExporter, VoiceDiagnostics
    from theta_xr.overlay import world_figures, world_lines

    world = World()
    spawn(world, [(0.0, -0.3, -2.0)], [(255, 0, 0, 255)], scale=0.3)
    fresh.install(world, lambda: stereo_eyes(HEAD, size=SIZE), overlay=True)
    world.step()
    empty = world.metrics()
    assert world_figures(empty.counters, empty.gauges) == {}
    panel_before = _overlay_rows(fresh.read_eye(0))
    # what theta_net's client and theta_voice's exporter put into the world's telemetry
    for key, value in {"net.rtt_ms": 12.5, "net.loss": 0.02, "net.kbps_down": 240.0}.items():
        world.telemetry.gauge(key, value)
    DiagnosticsExporter().export(world.telemetry, VoiceDiagnostics(
        stream_id=7, direction="rx", current_delay_ms=60.0, loss_rate=0.125,
        bitrate_bps=32000.0, concealment_events=3))
    world.telemetry.count("voice.dropped.malformed", 2)
    world.telemetry.gauge("editor.selected", 1.0)  # not a network or voice figure
    m = world.metrics()
    figures = world_figures(m.counters, m.gauges)
    assert figures == {
        "net": "rtt_ms 12.5 loss 0.02 kbps_down 240",
        "voice.rx.7": "current_delay_ms 60 loss_rate 0.125 bitrate_bps 32000 "
                      "concealment_events 3",
        "voice.dropped": "malformed 2",
    }
    lines = world_lines(m)
    assert lines[0].startswith("frame") and "render" in lines[1]
    assert lines[-3:] == [f"{k}: {v}" for k, v in figures.items()]
    assert len(world_figures(m.counters, m.gauges, max_lines=1)) == 1
    world.step()
    panel_after = _overlay_rows(fresh.read_eye(0))
    # the panel grew by the three figure lines (12 px each), drawn in the frame
    assert panel_after - panel_before == 3 * 12


def _overlay_rows(eye: np.ndarray) -> int:
    """Rows the overlay panel covers: its left edge column, darker than the clear colour."""
    x0 = 8 + SIZE[0] // 8
    column = eye[:, x0 + 1].astype(int).sum(axis=1)
    background = eye[-1, -1].astype(int).sum()
    return int((column < background - 6).sum())


def _gl_objects(value: object, depth: int = 0) -> list[object]:
    """The moderngl objects reachable from ``value`` (a renderer's attributes), attachments
    of framebuffers included."""
    import moderngl

    if isinstance(value, moderngl.Framebuffer):
        return [value, *value.color_attachments, value.depth_attachment]
    if hasattr(value, "mglo"):
        return [value]
    if depth < 2 and isinstance(value, (list, tuple)):
        return [o for v in value for o in _gl_objects(v, depth + 1)]
    if depth < 2 and isinstance(value, dict):
        return [o for v in value.values() for o in _gl_objects(v, depth + 1)]
    return []


@pytest.mark.parametrize("stereo", ["two_pass", "single_pass"])
def test_close_releases_the_renderers_gl_objects_while_the_context_lives_on(
    fresh: ModernGLRenderer, stereo: str,
) -> None:
    """The context is shared (here with ``fresh``), so each closed renderer's images, MSAA
    targets and buffers must go with it, not with the context."""
    world = World()
    spawn(world, [(0.0, 0.0, -2.0)], [(255, 0, 0, 255)], scale=0.3)
    other = ModernGLRenderer(eye_size=SIZE, samples=4, stereo=stereo)
    assert other.ctx is fresh.ctx
    other.attach(world, (STANDARD,))
    other.draw(stereo_eyes(HEAD, size=SIZE), overlay=["frame 1.00 ms"])
    objects = [o for v in vars(other).values() if v is not other.ctx
               for o in _gl_objects(v)]
    assert len(objects) > 10
    other.close()
    alive = [o for o in objects if type(o.mglo).__name__ != "InvalidObject"]  # type: ignore[attr-defined]
    assert alive == []
    fresh.attach(world, (STANDARD,))  # the shared context still draws
    fresh.draw(stereo_eyes(HEAD, size=SIZE))
    assert red_mask(fresh.read_eye(0)).any()


def test_a_closed_renderer_refuses_every_use_with_a_typed_error(
    renderer: ModernGLRenderer,
) -> None:
    """Reads raised moderngl's bare errors (not a ThetaError) once the renderer's objects or
    its context were released, and attach() took a world it could never draw. (The context
    is the module renderer's, shared: a second context would become the current one.)"""
    closed = ModernGLRenderer(eye_size=SIZE, samples=0)
    closed.close()
    uses = [
        ("draw()", lambda: closed.draw(stereo_eyes(HEAD, size=SIZE))),
        ("prepare()", lambda: closed.prepare(stereo_eyes(HEAD, size=SIZE))),
        ("read_eye()", lambda: closed.read_eye(0)),
        ("read_eye()", closed.read_stereo),
        ("eye_textures", lambda: closed.eye_textures),
        ("attach()", lambda: closed.attach(World())),
        ("install()", lambda: closed.install(World(), lambda: ())),
        ("finish()", closed.finish),
        ("copy_to()", lambda: closed.copy_to(0, None)),  # type: ignore[arg-type]
        ("present()", lambda: closed.present(None)),  # type: ignore[arg-type]
        ("external_targets()", lambda: closed.external_targets([1])),
    ]
    for what, use in uses:
        with pytest.raises(XrError) as caught:
            use()
        assert str(caught.value) == f"{what} after close()"
    closed.close()  # closing twice is harmless


@pytest.mark.parametrize("stereo", ["two_pass", "single_pass"])
def test_a_mirrored_instance_is_drawn_as_its_mirror_image_not_inside_out(
    fresh: ModernGLRenderer, stereo: str,
) -> None:
    """A cube is its own mirror image, so a negative scale (one axis or three) must draw the
    picture the positive scale draws. Before, back-face culling kept the mirrored cube's
    insides, lit by normals that ignored the sign."""
    r = fresh if stereo == "two_pass" else ModernGLRenderer(eye_size=SIZE, samples=4,
                                                             stereo=stereo)
    eyes = stereo_eyes(HEAD, size=SIZE)
    images = []
    try:
        for scale in ((0.6, 0.6, 0.6), (-0.6, -0.6, -0.6), (-0.6, 0.6, 0.6)):
            world = World()
            r.instances.clear()
            r.attach(world, (STANDARD,))
            world.spawn({Position: (0.3, -0.3, -2.0), Rotation: (0.2, 0.3, 0.1, 0.93),
                         Scale: scale, Color: (0, 200, 0, 255)})
            r.draw(eyes)
            images.append(r.read_stereo().astype(int))
    finally:
        r.instances.clear()
        if r is not fresh:
            r.close()
    assert (images[0].max(axis=2) > 60).sum() > 200
    for mirrored in images[1:]:
        assert np.abs(mirrored - images[0]).max() <= 2


def test_renderers_of_two_gl_versions_in_one_process_each_draw_their_own_picture() -> None:
    """Creating the second context made it current; the first renderer then drew its objects
    into it and the process died (SIGSEGV). Run in a child process, as that crash would
    take the test run with it."""
    import subprocess
    import sys

    script = """
import numpy as np
from theta_ecs import World
from theta_ecs.interfaces import Pose
from theta_ecs.stdcomponents import Color, Position, Scale
from theta_xr.binding import STANDARD
from theta_xr.camera import stereo_eyes
from theta_xr.renderer import ModernGLRenderer

size = (48, 54)
eyes = stereo_eyes(Pose((0.0, 0.0, 0.0)), size=size)
counts = []
def scene(r, colour):
    w = World()
    r.attach(w, (STANDARD,))
    w.spawn({Position: (0.0, 0.0, -2.0), Scale: (0.5, 0.5, 0.5), Color: colour})
red = ModernGLRenderer(eye_size=size, samples=0)
scene(red, (255, 0, 0, 255))
green = ModernGLRenderer(eye_size=size, samples=0, gl_version=330)
scene(green, (0, 255, 0, 255))
for r, channel in ((red, 0), (green, 1), (red, 0)):
    r.draw(eyes)
    img = r.read_eye(0).astype(int)
    counts.append(int(((img[..., channel] > 100) & (img[..., 1 - channel] < 40)).sum()))
green.close()
red.draw(eyes)
img = red.read_eye(0).astype(int)
counts.append(int(((img[..., 0] > 100) & (img[..., 1] < 40)).sum()))
red.close()
print(counts)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0 and "no OpenGL" in done.stderr:
        pytest.skip(f"no EGL OpenGL context here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-2000:]
    counts = [int(v) for v in done.stdout.strip()[1:-1].split(",")]
    assert min(counts) > 50
    assert counts[0] == counts[2] == counts[3]


@pytest.mark.parametrize("stereo", ["two_pass", "single_pass"])
def test_an_eye_beyond_the_gl_limits_is_refused_typed(fresh: ModernGLRenderer,
                                                      stereo: str) -> None:
    """moderngl raised its bare 'framebuffer is not complete' (not a ThetaError), and the
    shared context stayed counted as in use by the renderer that never came to be."""
    from theta_xr import renderer as renderer_module
    from theta_xr.errors import EyeSizeError

    limit = int(fresh.ctx.info["GL_MAX_TEXTURE_SIZE"])
    users = renderer_module._SHARED[("egl", 450)][1]
    too_big = (limit // 2 + 1, 16) if stereo == "single_pass" else (limit + 1, 16)
    with pytest.raises(EyeSizeError) as caught:
        ModernGLRenderer(eye_size=too_big, samples=0, stereo=stereo)
    assert isinstance(caught.value, XrError) and str(limit) in str(caught.value.expected)
    assert renderer_module._SHARED[("egl", 450)][1] == users


def test_an_unknown_mesh_handle_is_counted_not_drawn_and_not_pickable(
    fresh: ModernGLRenderer,
) -> None:
    """A default mesh outside the library was an IndexError at draw(); a handle outside it
    vanished silently from the picture while the picker still hit a box of the last mesh's
    size where nothing was drawn."""
    from theta_xr.binding import Binding
    from theta_xr.picking import Ray, pick

    world = World()
    fresh.attach(world, (STANDARD,))
    spawn(world, [(0.0, 0.0, -2.0)], [(255, 0, 0, 255)], scale=0.5, mesh=999)
    behind = spawn(world, [(0.0, 0.0, -4.0)], [(0, 0, 255, 255)], scale=0.5)
    stats = fresh.draw(stereo_eyes(HEAD, size=SIZE))
    assert (stats.instances, stats.unknown_mesh) == (2, 1)
    assert not red_mask(fresh.read_eye(0)).any()
    hit = pick(world, Ray((0.0, 0.0, 0.0), (0.0, 0.0, -1.0)), (STANDARD,), fresh.meshes)
    assert hit is not None and hit.entity == int(behind[0])  # through the undrawn one
    fresh.instances.clear()
    bare = World()
    bare.spawn({Position: (0.0, 0.0, -2.0)})
    fresh.attach(bare, (Binding(Position, default_mesh=999),))
    assert fresh.draw(stereo_eyes(HEAD, size=SIZE)).unknown_mesh == 1
    assert pick(bare, Ray((0.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
                (Binding(Position, default_mesh=999),), fresh.meshes) is None


def test_the_renderer_protocol_refuses_malformed_matrices_typed(fresh: ModernGLRenderer) -> None:
    """A singular view was numpy's LinAlgError and a model not 4x4 a bare ValueError."""
    model = np.eye(4, dtype=np.float32)
    model[:3, 3] = (0.0, 0.0, -2.0)
    item = RenderItem(model, (1.0, 0.0, 0.0, 1.0))
    with pytest.raises(XrError, match="invertible"):
        fresh.render([item], [np.zeros((4, 4), np.float32)])
    with pytest.raises(XrError, match="4x4"):
        fresh.render([RenderItem(np.eye(3, dtype=np.float32), (1.0, 0.0, 0.0, 1.0))],
                     [np.eye(4, dtype=np.float32)])
    fresh.render([item], [np.eye(4, dtype=np.float32)] * 2)  # and the next good call draws
    assert red_mask(fresh.read_eye(0)).sum() > 20


def test_the_renderer_protocol_draws_a_mirroring_model_as_its_mirror_image(
    fresh: ModernGLRenderer,
) -> None:
    """A model with a negative determinant was split into positive scales and an improper
    'rotation' no quaternion describes: the cube came out turned and squashed."""
    images = []
    for diag in ((0.5, 0.5, 0.5), (-0.5, 0.5, 0.5), (0.5, -0.5, 0.5)):
        model = np.diag((*diag, 1.0)).astype(np.float32)
        turn = np.eye(4, dtype=np.float32)
        turn[:3, :3] = np.array([[0.8, 0.0, 0.6], [0.0, 1.0, 0.0], [-0.6, 0.0, 0.8]])
        model = turn @ model
        model[:3, 3] = (0.2, -0.2, -2.0)
        fresh.render([RenderItem(model, (1.0, 0.0, 0.0, 1.0))], [np.eye(4, dtype=np.float32)] * 2)
        images.append(fresh.read_stereo().astype(int))
    assert red_mask(images[0].astype(np.uint8)).sum() > 100
    for mirrored in images[1:]:
        assert np.abs(mirrored - images[0]).max() <= 2


def test_overlay_text_beyond_latin_1_is_drawn_not_raised(fresh: ModernGLRenderer) -> None:
    """The bitmap font encodes Latin-1 only: a line with an arrow or a CJK name (a system's,
    a peer's) raised UnicodeEncodeError out of draw(), and so out of every frame."""
    from theta_xr.overlay import render_text

    fresh.draw(stereo_eyes(HEAD, size=SIZE), overlay=["frame 1.00 ms → 日本 ✓", 1.5])  # type: ignore[list-item]
    assert np.array_equal(render_text(["a → b"], 80), render_text(["a ? b"], 80))
    assert not np.array_equal(render_text(["a → b"], 80), render_text(["a   b"], 80))


def test_an_overlay_taller_than_the_eye_keeps_what_fits(fresh: ModernGLRenderer) -> None:
    """5,000 lines made a 60,008-pixel-tall texture: GL_INVALID_VALUE, and no overlay."""
    eyes = stereo_eyes(HEAD, size=SIZE)
    fresh.draw(eyes)
    plain = fresh.read_eye(0).astype(int)
    assert fresh.ctx.error == "GL_NO_ERROR"  # (reading it clears any earlier one)
    fresh.draw(eyes, overlay=[f"line {i}" for i in range(5000)])
    assert fresh.ctx.error == "GL_NO_ERROR"
    shown = np.abs(fresh.read_eye(0).astype(int) - plain).max(axis=2) > 30
    assert shown.sum() > 30  # the panel's text is there
