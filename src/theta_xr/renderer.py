"""The moderngl stereo renderer: instanced draws straight from ECS columns, one pass per eye.

This is the one module that imports moderngl, so ``theta backends`` can say why it cannot load.
Headless by default (an EGL context: Mesa llvmpipe here, the NVIDIA driver on a GPU machine,
GL 4.5 asked for explicitly); a window's context (:mod:`theta_xr.desktop`) or an OpenXR
swapchain's textures (:mod:`theta_xr.openxr`) plug in through ``context`` and ``targets``.

Per frame: :class:`~theta_xr.instances.InstanceSet` says which rows of which columns changed;
each becomes one buffer write per archetype and stream. Culling writes one visibility byte per
instance. Each eye is then one instanced draw per archetype and mesh into a multisampled
framebuffer, resolved into that eye's image. Shading is Lambert plus ambient in linear light,
written out sRGB-encoded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import moderngl
import numpy as np
import numpy.typing as npt

from theta_ecs.interfaces import Pose, RenderItem
from theta_ecs.schedule import Stage, SystemContext
from theta_ecs.stdcomponents import Color, Position, Rotation, Scale
from theta_ecs.world import World

from .binding import STANDARD, Binding
from .camera import EYE_SIZE, FOV_DEG, Eye, eye_from_fov
from .components import MeshHandle
from .errors import EyeSizeError, GraphicsUnavailableError, XrError
from .instances import InstanceSet, Slot, Update, Write
from .math3d import matrix_to_quat, symmetric_fov
from .meshes import MeshLibrary
from .overlay import LINE_HEIGHT, PADDING, render_text, world_lines

# GLSL both vertex shaders use: a quaternion rotation, and the scale normals divide by
_INSTANCE_MATH = """vec3 rotate(vec4 q, vec3 v) {
    return v + 2.0 * cross(q.xyz, cross(q.xyz, v) + q.w * v);
}

// the scale kept away from zero with its sign: normals of a mirrored instance turn with it
vec3 signed_floor(vec3 s) {
    return mix(vec3(1e-8), s, greaterThanEqual(abs(s), vec3(1e-8)));
}
"""

_VERTEX = """
#version 330 core
uniform mat4 u_viewproj;
uniform uint u_mesh;
in vec3 in_vert;
in vec3 in_norm;
in vec3 i_pos;
in vec4 i_rot;
in vec3 i_scale;
in vec4 i_color;
in uint i_mesh;
in uint i_visible;
out vec3 v_norm;
out vec3 v_color;
out vec3 v_world;

""" + _INSTANCE_MATH + """
void main() {
    if (i_visible == 0u || i_mesh != u_mesh) {
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);  // outside the clip volume: nothing drawn
        v_norm = vec3(0.0);
        v_color = vec3(0.0);
        v_world = vec3(0.0);
        return;
    }
    vec4 q = i_rot / max(length(i_rot), 1e-8);
    vec3 world = rotate(q, in_vert * i_scale) + i_pos;
    v_world = world;
    v_norm = rotate(q, in_norm / signed_floor(i_scale));
    v_color = pow(i_color.rgb, vec3(2.2));  // sRGB in, linear light out
    gl_Position = u_viewproj * vec4(world, 1.0);
}
"""

_FRAGMENT = """
#version 330 core
uniform vec3 u_light;
uniform bool u_flat;
in vec3 v_norm;
in vec3 v_color;
in vec3 v_world;
out vec4 f_color;

void main() {
    // flat meshes: the face's normal from how the world position changes across the screen
    vec3 n = u_flat ? normalize(cross(dFdx(v_world), dFdy(v_world))) : normalize(v_norm);
    float diffuse = max(dot(n, u_light), 0.0);
    float sky = 0.5 + 0.5 * n.y;  // hemisphere ambient: brighter from above
    vec3 linear = v_color * (0.75 * diffuse + 0.25 * sky);
    f_color = vec4(pow(linear, vec3(1.0 / 2.2)), 1.0);  // sRGB out
}
"""

_SINGLE_PASS_VERTEX = """
#version 430 core
// Both eyes in one draw: instance 2i is entity i in the left eye, 2i + 1 in the right. The
// columns are read as storage buffers (a divisor of 2 is not expressible as an attribute), and
// each eye is squeezed into its half of a side-by-side target, clip planes keeping it there.
layout(std430, binding = 0) readonly buffer Positions { float pos[]; };  // 3, or 10 if packed
layout(std430, binding = 1) readonly buffer Rotations { vec4 rot[]; };
layout(std430, binding = 2) readonly buffer Scales { float scl[]; };
layout(std430, binding = 3) readonly buffer Colors { uint col[]; };
layout(std430, binding = 4) readonly buffer Meshes { uint msh[]; };  // uint16 pairs
layout(std430, binding = 5) readonly buffer Visible { uint vis[]; };  // uint8 quads
uniform mat4 u_viewproj[2];
uniform uint u_mesh;
uniform bool u_packed;
in vec3 in_vert;
in vec3 in_norm;
out vec3 v_norm;
out vec3 v_color;
out vec3 v_world;
out float gl_ClipDistance[2];

""" + _INSTANCE_MATH + """
void main() {
    int eye = gl_InstanceID & 1;
    int i = gl_InstanceID >> 1;
    uint mesh = (msh[i >> 1] >> (16 * (i & 1))) & 0xFFFFu;
    uint visible = (vis[i >> 2] >> (8 * (i & 3))) & 0xFFu;
    if (visible == 0u || mesh != u_mesh) {
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        gl_ClipDistance[0] = -1.0;
        gl_ClipDistance[1] = -1.0;
        v_norm = vec3(0.0);
        v_color = vec3(0.0);
        v_world = vec3(0.0);
        return;
    }
    vec3 p;
    vec4 r;
    vec3 s;
    if (u_packed) {
        int b = 10 * i;
        p = vec3(pos[b], pos[b + 1], pos[b + 2]);
        r = vec4(pos[b + 3], pos[b + 4], pos[b + 5], pos[b + 6]);
        s = vec3(pos[b + 7], pos[b + 8], pos[b + 9]);
    } else {
        p = vec3(pos[3 * i], pos[3 * i + 1], pos[3 * i + 2]);
        r = rot[i];
        s = vec3(scl[3 * i], scl[3 * i + 1], scl[3 * i + 2]);
    }
    vec4 q = r / max(length(r), 1e-8);
    vec3 world = rotate(q, in_vert * s) + p;
    v_world = world;
    v_norm = rotate(q, in_norm / signed_floor(s));
    v_color = pow(unpackUnorm4x8(col[i]).rgb, vec3(2.2));
    vec4 clip = u_viewproj[eye] * vec4(world, 1.0);
    gl_ClipDistance[0] = clip.w + clip.x;  // inside this eye's own left and right edges
    gl_ClipDistance[1] = clip.w - clip.x;
    clip.x = 0.5 * clip.x + (float(eye) - 0.5) * clip.w;  // into the eye's half
    gl_Position = clip;
}
"""

_OVERLAY_VERTEX = """
#version 330 core
uniform vec4 u_rect;  // x, y, w, h in clip units
in vec2 in_uv;
out vec2 v_uv;
void main() {
    v_uv = in_uv;
    gl_Position = vec4(u_rect.xy + in_uv * u_rect.zw, 0.0, 1.0);
}
"""

_OVERLAY_FRAGMENT = """
#version 330 core
uniform sampler2D u_text;
in vec2 v_uv;
out vec4 f_color;
void main() {
    f_color = texture(u_text, vec2(v_uv.x, 1.0 - v_uv.y));
}
"""

_BLIT_FRAGMENT = """
#version 330 core
uniform sampler2D u_image;
in vec2 v_uv;
out vec4 f_color;
void main() {
    f_color = texture(u_image, v_uv);
}
"""

_GL_CLIP_DISTANCE0 = 0x3000

#: Per-eye pixel count from which the default MSAA drops from 4x to 2x: headset-class images
#: (an H100 drew 100k stereo cubes at 2x(1832x1920) in 16.5 ms at 4x, 10.7 ms at 2x, against the
#: 11.1 ms budget of 90 Hz); below it (the simulated HMD's 640x720, goldens) 4x costs little.
LARGE_EYE_PIXELS = 1_000_000


def default_samples(eye_size: tuple[int, int]) -> int:
    """The MSAA sample count a renderer uses when none is asked for: 4x for small eye images,
    2x from :data:`LARGE_EYE_PIXELS` per eye up."""
    return 2 if int(eye_size[0]) * int(eye_size[1]) >= LARGE_EYE_PIXELS else 4

_LIGHT = np.array([0.35, 0.8, 0.45], np.float64)
_LIGHT /= np.linalg.norm(_LIGHT)

_FORMATS = {
    "transform": ("3f 4f 3f/i", ("i_pos", "i_rot", "i_scale")),
    "pos": ("3f/i", ("i_pos",)),
    "rot": ("4f/i", ("i_rot",)),
    "scale": ("3f/i", ("i_scale",)),
    "color": ("4f1/i", ("i_color",)),
    "mesh": ("u2/i", ("i_mesh",)),
    "visible": ("u1/i", ("i_visible",)),
}
_BYTES = {"transform": 40, "pos": 12, "rot": 16, "scale": 12, "color": 4, "mesh": 2,
          "visible": 1}


def create_context(backend: str = "egl", gl_version: int = 450) -> moderngl.Context:
    """A headless OpenGL context of at least ``gl_version`` (asked for explicitly: NVIDIA
    otherwise gives exactly the version asked, not the newest)."""
    make: Any = moderngl.create_standalone_context  # its stub mistypes ``backend``
    try:
        ctx: moderngl.Context = make(backend=backend, require=gl_version)
        return ctx
    except Exception as first:  # glcontext raises bare Exceptions naming the EGL call
        exc = first
    if backend == "egl":  # hosts without the -dev packages have only the versioned names
        try:
            ctx = make(backend=backend, require=gl_version, libgl="libGL.so.1",
                       libegl="libEGL.so.1")
            return ctx
        except Exception as second:
            exc = second
    raise GraphicsUnavailableError(
        f"no OpenGL {gl_version // 100}.{gl_version % 100 // 10} context through {backend}: "
        f"{exc} (on Debian: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri)"
    ) from exc


def _uniform(prog: moderngl.Program, name: str) -> moderngl.Uniform:
    member = prog[name]
    if not isinstance(member, moderngl.Uniform):
        raise XrError(f"shader member {name!r} is not a uniform")
    return member


#: Headless contexts shared by the renderers of a process, one per backend and version:
#: moderngl draws into whichever context is current, so renderers of one kind share a context,
#: and each makes its own current before GL work (another kind's may have been made since).
_SHARED: dict[tuple[str, int], list[Any]] = {}


def _acquire_shared(backend: str, gl_version: int) -> moderngl.Context:
    entry = _SHARED.get((backend, gl_version))
    if entry is None:
        entry = _SHARED[(backend, gl_version)] = [create_context(backend, gl_version), 0]
    entry[1] += 1
    ctx: moderngl.Context = entry[0]
    return ctx


def _release_shared(ctx: moderngl.Context) -> None:
    for key, entry in list(_SHARED.items()):
        if entry[0] is ctx:
            entry[1] -= 1
            if entry[1] == 0:
                del _SHARED[key]
                ctx.release()
            return


@dataclass
class FrameStats:
    """Where one frame's time went (seconds) and how much it moved."""

    sync_s: float = 0.0  # change detection over the columns
    cull_s: float = 0.0
    upload_s: float = 0.0  # buffer writes
    draw_s: float = 0.0  # issuing the passes (GPU work may still be running)
    instances: int = 0
    visible: int = 0
    rows_uploaded: int = 0
    bytes_uploaded: int = 0
    draw_calls: int = 0
    unknown_mesh: int = 0  # instances not drawn: their mesh handle is not in the library

    @property
    def cpu_s(self) -> float:
        return self.sync_s + self.cull_s + self.upload_s + self.draw_s


@dataclass
class _SlotGpu:
    buffers: dict[str, moderngl.Buffer] = field(default_factory=dict)
    vaos: dict[int, moderngl.VertexArray] = field(default_factory=dict)
    mesh_version: int = -1


class ModernGLRenderer:
    """Stereo (or mono) instanced renderer; see the module docstring.

    ``eye_size`` is one eye's image; ``samples`` the MSAA sample count (0: none; ``None``, the
    default: :func:`default_samples`, 2x at headset sizes, else 4x). ``context``
    takes an existing moderngl context (a window's); else one is made headless through
    ``backend``. ``stereo``: ``"two_pass"`` (one pass per eye, per-eye images) or
    ``"single_pass"`` (both eyes in one draw into a side-by-side image; GL 4.3; measured 12-15%
    faster at 1M cubes on an H100, a little slower at 100k). ``cull`` turns on CPU frustum
    culling (a visibility byte per instance): off by default, since measured on llvmpipe and on
    an H100 it cost more CPU time than it saved (the vertex stage still runs for culled
    instances; the clipper rejects them as cheaply).
    """

    def __init__(
        self,
        *,
        eye_size: tuple[int, int] = EYE_SIZE,
        samples: int | None = None,
        backend: str = "egl",
        gl_version: int = 450,
        context: moderngl.Context | None = None,
        meshes: MeshLibrary | None = None,
        cull: bool = False,
        clear_color: tuple[float, float, float] = (0.05, 0.06, 0.08),
        stereo: str = "two_pass",
        **_: object,
    ) -> None:
        w, h = int(eye_size[0]), int(eye_size[1])
        if w <= 0 or h <= 0:
            raise XrError(f"eye size must be positive, got {eye_size}")
        if stereo not in ("two_pass", "single_pass"):
            raise XrError(f"stereo is 'two_pass' or 'single_pass', got {stereo!r}")
        self.stereo = stereo
        self._own_ctx = context is None
        self.ctx = context if context is not None else _acquire_shared(backend, gl_version)
        self._make_current()
        try:
            self._check_size(w, h, stereo)
        except EyeSizeError:
            if self._own_ctx:
                _release_shared(self.ctx)
            raise
        self.eye_size = (w, h)
        wanted = default_samples(self.eye_size) if samples is None else int(samples)
        self.samples = min(max(wanted, 0), int(self.ctx.max_samples))
        self.meshes = meshes if meshes is not None else MeshLibrary()
        self.cull = cull
        self.clear_color = clear_color
        self.closed = False
        self.instances: list[InstanceSet] = []
        self.stats = FrameStats()
        self.frames = 0
        self._prog = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        _uniform(self._prog, "u_light").value = tuple(float(v) for v in _LIGHT)
        self._single: moderngl.Program | None = None
        self._single_vaos: dict[int, moderngl.VertexArray] = {}
        if stereo == "single_pass":
            self._single = self.ctx.program(vertex_shader=_SINGLE_PASS_VERTEX,
                                            fragment_shader=_FRAGMENT)
            _uniform(self._single, "u_light").value = tuple(float(v) for v in _LIGHT)
            self._empty = self.ctx.buffer(reserve=16)
        self._overlay_prog = self.ctx.program(
            vertex_shader=_OVERLAY_VERTEX, fragment_shader=_OVERLAY_FRAGMENT
        )
        quad = np.array([0, 0, 1, 0, 0, 1, 1, 1], np.float32)
        self._quad = self.ctx.buffer(quad.tobytes())
        self._overlay_vao = self.ctx.vertex_array(
            self._overlay_prog, [(self._quad, "2f", "in_uv")]
        )
        self._overlay_tex: moderngl.Texture | None = None
        self._blit_prog = self.ctx.program(vertex_shader=_OVERLAY_VERTEX,
                                           fragment_shader=_BLIT_FRAGMENT)
        self._blit_vao = self.ctx.vertex_array(self._blit_prog, [(self._quad, "2f", "in_uv")])
        self._mesh_gpu: list[tuple[moderngl.Buffer, moderngl.Buffer]] = []
        self._mesh_version = -1
        self._upload_meshes()
        self._make_framebuffers()
        self._loose: tuple[World, InstanceSet] | None = None

    # -- set-up ----------------------------------------------------------------------------
    def _check_size(self, w: int, h: int, stereo: str) -> None:
        """Refuse an eye image beyond the context's limits before making anything: moderngl
        raised its bare 'framebuffer is not complete' from half-built targets, and the shared
        context stayed counted as in use."""
        info = self.ctx.info
        limit = min(int(info["GL_MAX_TEXTURE_SIZE"]), int(info["GL_MAX_RENDERBUFFER_SIZE"]),
                    *(int(v) for v in info["GL_MAX_VIEWPORT_DIMS"]))
        width = 2 * w if stereo == "single_pass" else w  # both eyes side by side
        if width > limit or h > limit:
            what = "both eyes side by side" if stereo == "single_pass" else "one eye"
            raise EyeSizeError(f"eye size {w}x{h} too large for this GL ({what})",
                               expected=f"each side at most {limit}",
                               actual=f"{width}x{h}")

    def _make_framebuffers(self) -> None:
        ctx, size = self.ctx, self.eye_size
        if self.stereo == "single_pass":
            size = (2 * size[0], size[1])  # both eyes side by side in one image
            self._wide = ctx.texture(size, 4)
            self._wide_out = ctx.framebuffer([self._wide], ctx.depth_renderbuffer(size))
        self._targets = [ctx.texture(size, 4) for _ in range(2)]
        self._depth = ctx.depth_renderbuffer(size)
        self._out = [ctx.framebuffer([t], self._depth) for t in self._targets]
        if self.stereo == "single_pass" and self.samples:
            self._msaa: moderngl.Framebuffer | None = ctx.framebuffer(
                [ctx.renderbuffer(size, 4, samples=self.samples)],
                ctx.depth_renderbuffer(size, samples=self.samples),
            )
        elif self.samples:
            self._msaa = ctx.framebuffer(
                [ctx.renderbuffer(size, 4, samples=self.samples)],
                ctx.depth_renderbuffer(size, samples=self.samples),
            )
        else:
            self._msaa = None

    def _upload_meshes(self) -> None:
        if self._mesh_version == self.meshes.version:
            return
        for vbo, ibo in self._mesh_gpu:
            vbo.release()
            ibo.release()
        self._mesh_gpu = []
        for mesh in self.meshes.meshes:
            verts = np.hstack([mesh.vertices, mesh.normals]).astype(np.float32)
            self._mesh_gpu.append(
                (self.ctx.buffer(verts.tobytes()), self.ctx.buffer(mesh.indices.tobytes()))
            )
        self._mesh_version = self.meshes.version

    def attach(self, world: World, bindings: Sequence[Binding] = (STANDARD,)) -> InstanceSet:
        """Draw ``world``'s entities that ``bindings`` match, from now on."""
        self._check_open("attach()")
        inst = InstanceSet(world, bindings, self.meshes, cull=self.cull)
        self.instances.append(inst)
        return inst

    def install(
        self, world: World, eyes: Any, bindings: Sequence[Binding] = (STANDARD,),
        *, name: str = "theta_xr.render", overlay: bool = False,
    ) -> str:
        """Attach ``world`` and add a render-stage system that draws it every frame for the
        eyes ``eyes()`` returns; with ``overlay``, the world's telemetry over each eye (frame and
        stage times, network and voice figures: :func:`~theta_xr.overlay.world_lines`). Returns
        the system's name."""
        self._check_open("install()")
        self.attach(world, bindings)
        reads = list(dict.fromkeys(c for b in bindings for c in b.components()))

        def lines(stats: FrameStats) -> list[str]:
            return world_lines(world.metrics(), {"instances": f"{stats.instances}"})

        def render_system(ctx: SystemContext) -> None:
            self.draw(eyes(), lines if overlay else None)

        return world.add_system(render_system, stage=Stage.RENDER, reads=reads, name=name)

    # -- per frame -------------------------------------------------------------------------
    def _check_open(self, what: str) -> None:
        """A typed error for a closed renderer's use, not moderngl's bare 'context was
        released' (or a draw into released buffers)."""
        if self.closed:
            raise XrError(f"{what} after close()")

    def _make_current(self) -> None:
        """Make this renderer's headless context the current one: creating another (a
        different GL version or backend) makes that one current, and drawing with objects of
        this one into it crashed the process (SIGSEGV in glDrawElements). A context passed in
        (a window's) stays the caller's to make current."""
        if self._own_ctx:
            self.ctx.__enter__()

    def _gpu(self, slot: Slot) -> _SlotGpu:
        gpu = slot.gpu
        if not isinstance(gpu, _SlotGpu):
            gpu = slot.gpu = _SlotGpu()
        return gpu

    def _apply(self, updates: Sequence[Update]) -> None:
        for upd in updates:
            slot = upd.slot
            gpu = self._gpu(slot)
            if upd.realloc or not gpu.buffers:
                for buf in gpu.buffers.values():
                    buf.release()
                for vao in gpu.vaos.values():
                    vao.release()
                gpu.vaos.clear()
                gpu.buffers = {
                    s: self.ctx.buffer(reserve=slot.capacity * _BYTES[s]) for s in slot.streams()
                }
            for w in upd.writes:
                self._write(gpu, w)

    @staticmethod
    def _write(gpu: _SlotGpu, w: Write) -> None:
        gpu.buffers[w.stream].write(np.ascontiguousarray(w.data), offset=w.first * _BYTES[
            w.stream])

    def _vao(self, slot: Slot, handle: int) -> moderngl.VertexArray:
        gpu = self._gpu(slot)
        if gpu.mesh_version != self._mesh_version:
            for vao in gpu.vaos.values():
                vao.release()
            gpu.vaos.clear()
            gpu.mesh_version = self._mesh_version
        found = gpu.vaos.get(handle)
        if found is not None:
            return found
        vbo, ibo = self._mesh_gpu[handle]
        content: list[tuple[Any, ...]] = [(vbo, "3f 3f", "in_vert", "in_norm")]
        for s in slot.streams():
            fmt, names = _FORMATS[s]
            content.append((gpu.buffers[s], fmt, *names))
        vao = gpu.vaos[handle] = self.ctx.vertex_array(self._prog, content, index_buffer=ibo,
                                                       index_element_size=4)
        return vao

    def draw(
        self, eyes: Sequence[Eye],
        overlay: Sequence[str] | Callable[[FrameStats], Sequence[str]] | None = None,
    ) -> FrameStats:
        """Render one frame: upload what changed, cull, then one pass per eye. ``overlay`` is
        text lines, or a function of this frame's stats so far (instances, visible, CPU time)
        that returns them."""
        self._check_open("draw()")
        self._make_current()
        if not 1 <= len(eyes) <= 2:
            raise XrError(f"one or two eyes, got {len(eyes)}")
        for eye in eyes:
            if tuple(eye.size) != self.eye_size:
                raise XrError(f"eye size {eye.size} differs from the renderer's {self.eye_size}")
        stats = self.prepare(eyes)
        t3 = time.perf_counter()
        if overlay is not None:
            self._set_overlay(overlay(stats) if callable(overlay) else overlay)
        if self._single is not None and len(eyes) == 2:
            calls = self._single_pass(eyes, overlay is not None)
        else:
            calls = 0
            for i, eye in enumerate(eyes):
                calls += self._pass(i, eye, overlay is not None)
        stats.draw_s = time.perf_counter() - t3
        stats.draw_calls = calls
        self.stats = stats
        self.frames += 1
        return stats

    def prepare(self, eyes: Sequence[Eye]) -> FrameStats:
        """The CPU side of a frame (the render system's cost): detect changes in the columns,
        cull against ``eyes``, write the buffers. :meth:`draw` calls it."""
        self._check_open("prepare()")
        self._make_current()
        stats = FrameStats()
        self._upload_meshes()
        t0 = time.perf_counter()
        updates = [u for inst in self.instances for u in inst.sync()]
        t1 = time.perf_counter()
        planes = np.stack([e.planes() for e in eyes])
        culled = [w for inst in self.instances for w in inst.cull(planes)]
        t2 = time.perf_counter()
        self._apply(updates)
        for slot, w in culled:
            self._write(self._gpu(slot), w)
        t3 = time.perf_counter()
        slots = [s for inst in self.instances for s in inst]
        stats.sync_s, stats.cull_s, stats.upload_s = t1 - t0, t2 - t1, t3 - t2
        stats.instances = sum(s.count for s in slots)
        stats.visible = sum(s.visible_count for s in slots)
        stats.unknown_mesh = sum(s.unknown_mesh for s in slots)
        stats.rows_uploaded = sum(i.rows_uploaded for i in self.instances)
        stats.bytes_uploaded = sum(i.bytes_uploaded for i in self.instances)
        return stats

    def _pass(self, index: int, eye: Eye, with_overlay: bool) -> int:
        target = self._msaa if self._msaa is not None else self._out[index]
        target.use()
        self.ctx.enable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)  # meshes wind CCW outward
        target.clear(*self.clear_color, 1.0, depth=1.0)
        _uniform(self._prog, "u_viewproj").write(eye.view_projection.T.astype(np.float32).tobytes())
        calls = 0
        for inst in self.instances:
            for slot in inst:
                if not slot.count or not slot.visible_count:
                    continue
                self._face_culling(slot)
                for handle in slot.meshes:
                    _uniform(self._prog, "u_mesh").value = handle
                    _uniform(self._prog, "u_flat").value = self.meshes.meshes[handle].flat
                    self._vao(slot, handle).render(instances=slot.count)
                    calls += 1
        if with_overlay and self._overlay_tex is not None:
            self._draw_overlay()
        if self._msaa is not None:
            self.ctx.copy_framebuffer(self._out[index], self._msaa)
        return calls

    def _face_culling(self, slot: Slot) -> None:
        """Back faces culled, except for an archetype holding a mirrored instance (a negative
        scale determinant turns its faces' winding, so culling would keep only its insides);
        the depth test still hides its far faces."""
        if slot.mirrored:
            self.ctx.disable(moderngl.CULL_FACE)
        else:
            self.ctx.enable(moderngl.CULL_FACE)

    def _single_vao(self, handle: int) -> moderngl.VertexArray:
        assert self._single is not None
        if self._single_vaos and next(iter(self._single_vaos.values())).extra != \
                self._mesh_version:
            for vao in self._single_vaos.values():
                vao.release()
            self._single_vaos.clear()
        found = self._single_vaos.get(handle)
        if found is not None:
            return found
        vbo, ibo = self._mesh_gpu[handle]
        vao = self.ctx.vertex_array(self._single, [(vbo, "3f 3f", "in_vert", "in_norm")],
                                    index_buffer=ibo, index_element_size=4)
        vao.extra = self._mesh_version
        self._single_vaos[handle] = vao
        return vao

    def _single_pass(self, eyes: Sequence[Eye], with_overlay: bool) -> int:
        """Both eyes in one instanced draw per archetype and mesh (see the shader)."""
        prog = self._single
        assert prog is not None
        target = self._msaa if self._msaa is not None else self._wide_out
        target.use()
        self.ctx.enable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        self.ctx.enable_direct(_GL_CLIP_DISTANCE0)
        self.ctx.enable_direct(_GL_CLIP_DISTANCE0 + 1)
        target.clear(*self.clear_color, 1.0, depth=1.0)
        both = np.stack([e.view_projection.T for e in eyes]).astype(np.float32)
        _uniform(prog, "u_viewproj").write(both.tobytes())
        calls = 0
        for inst in self.instances:
            for slot in inst:
                if not slot.count or not slot.visible_count:
                    continue
                gpu = self._gpu(slot)
                packed = slot.binding.packed
                streams = (("transform", None, None) if packed else ("pos", "rot", "scale"))
                for binding, name in enumerate((*streams, "color", "mesh", "visible")):
                    buf = gpu.buffers[name] if name is not None else self._empty
                    buf.bind_to_storage_buffer(binding)
                _uniform(prog, "u_packed").value = packed
                self._face_culling(slot)
                for handle in slot.meshes:
                    _uniform(prog, "u_mesh").value = handle
                    _uniform(prog, "u_flat").value = self.meshes.meshes[handle].flat
                    self._single_vao(handle).render(instances=2 * slot.count)
                    calls += 1
        self.ctx.disable_direct(_GL_CLIP_DISTANCE0)
        self.ctx.disable_direct(_GL_CLIP_DISTANCE0 + 1)
        if with_overlay and self._overlay_tex is not None:
            w, h = self.eye_size
            for i in range(2):
                self.ctx.viewport = (i * w, 0, w, h)
                self._draw_overlay()
            self.ctx.viewport = (0, 0, 2 * w, h)
        if self._msaa is not None:
            self.ctx.copy_framebuffer(self._wide_out, self._msaa)
        return calls

    def _set_overlay(self, lines: Sequence[str]) -> None:
        w = max(64, min(self.eye_size[0] - self.eye_size[0] // 8 - 16, 400))
        # only what fits below the panel's top inset: a taller panel was a texture beyond the
        # GL limit (GL_INVALID_VALUE, no overlay at all) or drawn off the eye anyway
        fits = max(1, (self.eye_size[1] - self.eye_size[1] // 8 - 2 * PADDING) // LINE_HEIGHT)
        if len(lines) > fits:
            lines = [*lines[: fits - 1], f"(+{len(lines) - fits + 1} more lines)"]
        pixels = render_text(lines, w)
        size = (pixels.shape[1], pixels.shape[0])
        if self._overlay_tex is None or self._overlay_tex.size != size:
            if self._overlay_tex is not None:
                self._overlay_tex.release()
            self._overlay_tex = self.ctx.texture(size, 4)
            self._overlay_tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self._overlay_tex.write(pixels.tobytes())

    def _draw_overlay(self) -> None:
        assert self._overlay_tex is not None
        ew, eh = self.eye_size
        tw, th = self._overlay_tex.size
        # pixel-exact, top-left corner (inset so both eyes see it inside their overlap)
        x0, y0 = 8 + ew // 8, eh // 8
        rect = (-1 + 2 * x0 / ew, 1 - 2 * (y0 + th) / eh, 2 * tw / ew, 2 * th / eh)
        self.ctx.disable(moderngl.DEPTH_TEST)
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        self._overlay_tex.use(0)
        _uniform(self._overlay_prog, "u_rect").value = rect
        self._overlay_vao.render(moderngl.TRIANGLE_STRIP)
        self.ctx.disable(moderngl.BLEND)
        self.ctx.enable(moderngl.DEPTH_TEST)

    def finish(self) -> None:
        """Wait for the GPU to finish the frame (for timing)."""
        self._check_open("finish()")
        self._make_current()
        self.ctx.finish()

    def read_eye(self, index: int) -> npt.NDArray[np.uint8]:
        """One eye's image as RGB rows top-down (h, w, 3)."""
        self._check_open("read_eye()")
        self._make_current()
        w, h = self.eye_size
        if self.stereo == "single_pass":
            raw = self._wide_out.read(components=3, alignment=1)
            wide = np.frombuffer(raw, np.uint8).reshape(h, 2 * w, 3)[::-1]
            return np.ascontiguousarray(wide[:, index * w:(index + 1) * w])
        raw = self._out[index].read(components=3, alignment=1)
        return np.frombuffer(raw, np.uint8).reshape(h, w, 3)[::-1]

    def read_stereo(self) -> npt.NDArray[np.uint8]:
        """Both eyes side by side, left then right (h, 2w, 3)."""
        return np.hstack([self.read_eye(0), self.read_eye(1)])

    @property
    def eye_textures(self) -> tuple[moderngl.Texture, moderngl.Texture]:
        """Each eye's resolved image (what a compositor or a window samples)."""
        self._check_open("eye_textures")
        if self.stereo == "single_pass":
            raise XrError("single-pass stereo draws both eyes into one image: use present() or "
                          "read_stereo(), or the two_pass renderer for per-eye targets")
        return self._targets[0], self._targets[1]

    def present(self, target: moderngl.Framebuffer, eyes: int = 2) -> None:
        """Draw the eyes' images side by side over the whole of ``target`` (a window's
        ``ctx.screen``)."""
        self._check_open("present()")
        self._make_current()
        target.use()
        self.ctx.disable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        if self.stereo == "single_pass":
            self._wide.use(0)
            _uniform(self._blit_prog, "u_rect").value = (-1.0, -1.0, 2.0, 2.0)
            self._blit_vao.render(moderngl.TRIANGLE_STRIP)
            return
        width = 2.0 / eyes
        for i in range(eyes):
            self._targets[i].use(0)
            _uniform(self._blit_prog, "u_rect").value = (-1.0 + i * width, -1.0, width, 2.0)
            self._blit_vao.render(moderngl.TRIANGLE_STRIP)

    def external_targets(self, images: Sequence[int]) -> list[moderngl.Framebuffer]:
        """Framebuffers over GL textures made by someone else (an OpenXR swapchain's images,
        by GL texture name, each the eye size), for :meth:`copy_to`. Releasing them leaves the
        textures to their owner."""
        self._check_open("external_targets()")
        self._make_current()
        w, h = self.eye_size
        return [self.ctx.framebuffer([self.ctx.external_texture(int(name), (w, h), 4, 0, "f1")])
                for name in images]

    def copy_to(self, index: int, target: moderngl.Framebuffer) -> None:
        """Copy one eye's image into ``target`` (an OpenXR swapchain image's framebuffer)."""
        self._check_open("copy_to()")
        self._make_current()
        if self.stereo == "single_pass":
            raise XrError("copy_to needs per-eye images: use the two_pass renderer")
        self.ctx.copy_framebuffer(target, self._out[index])

    # -- the Renderer protocol (RenderItems and bare view matrices) ------------------------
    def render(self, items: Sequence[RenderItem], views: Sequence[npt.NDArray[np.float32]]) -> (
        None
    ):
        """Draw loose items for 4x4 view matrices (the core's Renderer protocol). The items are
        decomposed into the standard columns of a private World; engines should attach their
        own World instead, which skips this per-item step."""
        self._check_open("render()")
        try:  # checked before the private world changes: a refused call leaves it as it was
            models = np.stack([np.asarray(it.model, np.float64).reshape(4, 4) for it in items]) \
                if items else np.zeros((0, 4, 4))
            inverses = [np.linalg.inv(np.asarray(v, np.float64).reshape(4, 4)) for v in views[:2]]
        except (ValueError, TypeError) as exc:  # LinAlgError is a ValueError
            raise XrError(f"render(): each model and view must be a 4x4 matrix, each view "
                          f"invertible ({exc})") from exc
        if self._loose is None:
            world = World()
            self._loose = (world, InstanceSet(world, (STANDARD,), self.meshes, cull=self.cull))
        world, inst = self._loose
        world.despawn_batch(world.query(Position).entities())
        if items:
            scale = np.linalg.norm(models[:, :3, :3], axis=1)
            # a mirroring model (negative determinant): a negative x scale and a proper rotation,
            # where column norms alone left an improper matrix that no quaternion describes
            scale[np.linalg.det(models[:, :3, :3]) < 0, 0] *= -1
            rot = np.array([matrix_to_quat(m[:3, :3] / s) for m, s in zip(models, scale)])
            world.spawn_batch({
                Position: models[:, :3, 3].astype(np.float32),
                Rotation: rot.astype(np.float32),
                Scale: scale.astype(np.float32),
                Color: np.clip(np.array([it.color for it in items]) * 255 + 0.5, 0, 255).astype(
                    np.uint8),
                MeshHandle: np.zeros(len(items), np.uint16),
            })
        fov = symmetric_fov(FOV_DEG, self.eye_size[0] / self.eye_size[1])
        eyes = []
        for inv in inverses:
            x, y, z = (float(c) for c in inv[:3, 3])
            pose = Pose((x, y, z), matrix_to_quat(inv[:3, :3]))
            eyes.append(eye_from_fov(pose, fov, self.eye_size))
        if inst not in self.instances:
            self.instances.append(inst)
        try:
            self.draw(eyes)
        finally:
            self.instances.remove(inst)

    def metrics(self) -> Mapping[str, float]:
        s = self.stats
        return {"sync_ms": s.sync_s * 1e3, "cull_ms": s.cull_s * 1e3,
                "upload_ms": s.upload_s * 1e3, "draw_ms": s.draw_s * 1e3,
                "instances": s.instances, "visible": s.visible, "draw_calls": s.draw_calls}

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._make_current()
        self._release_instances()
        self._release_gl()
        if self._own_ctx:
            _release_shared(self.ctx)

    def _release_gl(self) -> None:
        """Release every GL object this renderer made: its context is shared with other
        renderers (or is a window's), so releasing the context alone freed nothing while another
        renderer lived, and each closed renderer left its eye images and MSAA targets behind."""
        objects: list[Any] = [self._prog, self._single, self._overlay_prog, self._quad,
                              self._overlay_vao, self._overlay_tex, self._blit_prog,
                              self._blit_vao, getattr(self, "_empty", None),
                              *self._single_vaos.values()]
        for vbo, ibo in self._mesh_gpu:
            objects += [vbo, ibo]
        framebuffers = [*self._out, self._msaa, getattr(self, "_wide_out", None)]
        for fb in framebuffers:
            if fb is not None:
                objects += [*fb.color_attachments, fb.depth_attachment, fb]
        objects += [*self._targets, self._depth]
        seen: set[int] = set()
        for obj in objects:
            if obj is not None and id(obj) not in seen:
                seen.add(id(obj))
                obj.release()
        self._single_vaos.clear()
        self._mesh_gpu = []
        self._overlay_tex = None

    def _release_instances(self) -> None:
        loose = [self._loose[1]] if self._loose is not None else []
        for inst in [*self.instances, *loose]:
            for slot in inst:
                gpu = slot.gpu
                if isinstance(gpu, _SlotGpu):
                    for b in gpu.buffers.values():
                        b.release()
                    for v in gpu.vaos.values():
                        v.release()
                slot.gpu = None
