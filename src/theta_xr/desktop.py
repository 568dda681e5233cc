"""The desktop window and provider, through GLFW: the one module that imports ``glfw``.

A window with an OpenGL 4.5 core context (moderngl wraps it for the renderer) and keyboard and
mouse input through :class:`~theta_xr.controls.FlyControls`. Where no display exists it raises
:class:`~theta_xr.errors.WindowUnavailableError` at once.
"""

from __future__ import annotations

import os
from typing import Any

import glfw

from theta_ecs.interfaces import InputFrame

from .controls import MOVES, FlyControls
from .errors import WindowUnavailableError


def display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class _GlfwLoader:
    """What moderngl asks of a context: GL function addresses (through GLFW)."""

    def load_opengl_function(self, name: str) -> int:
        return int(glfw.get_proc_address(name) or 0)

    def load(self, name: str) -> int:
        return self.load_opengl_function(name)

    def release(self) -> None:
        pass

    def __enter__(self) -> None:
        pass

    def __exit__(self, *_: object) -> None:
        pass


class DesktopWindow:
    """A GLFW window with a GL 4.5 core context made current."""

    def __init__(self, size: tuple[int, int] = (1280, 720), title: str = "theta") -> None:
        if not display_available():
            raise WindowUnavailableError("desktop: no display (DISPLAY and WAYLAND_DISPLAY unset)")
        if not glfw.init():
            raise WindowUnavailableError("desktop: glfw.init() failed (no usable display)")
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 4)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 5)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        # EGL, as the headless renderer uses: GLX and EGL contexts current in one thread
        # through libglvnd make glXMakeCurrent fail with BadAccess
        glfw.window_hint(glfw.CONTEXT_CREATION_API, glfw.EGL_CONTEXT_API)
        self.handle: Any = glfw.create_window(size[0], size[1], title, None, None)
        if not self.handle:
            glfw.terminate()
            raise WindowUnavailableError("desktop: no window with an OpenGL 4.5 core context")
        glfw.make_context_current(self.handle)
        self.size = size

    def context(self) -> Any:
        """The window's context for moderngl, its functions looked up through GLFW (so it
        works whichever API, EGL here, created the context)."""
        import moderngl  # the renderer's module owns moderngl; this only wraps the window's

        glfw.make_context_current(self.handle)
        moderngl.init_context(_GlfwLoader())
        ctx = moderngl.get_context()
        if ctx.version_code < 450:
            raise WindowUnavailableError(f"desktop: OpenGL {ctx.version_code} < 4.5")
        return ctx

    @property
    def should_close(self) -> bool:
        return bool(glfw.window_should_close(self.handle))

    def swap(self) -> None:
        glfw.swap_buffers(self.handle)
        glfw.poll_events()

    def close(self) -> None:
        glfw.destroy_window(self.handle)
        glfw.terminate()


class DesktopInputProvider:
    """Keyboard and mouse of a desktop window as tracked input."""

    def __init__(self, window: DesktopWindow | None = None, **_: object) -> None:
        self.window = window if window is not None else DesktopWindow()
        self._own = window is None
        self.controls = FlyControls()
        self._last_time: float | None = None
        self._last_cursor: tuple[float, float] | None = None

    def poll(self, now: float) -> InputFrame:
        h = self.window.handle
        glfw.poll_events()
        keys = [k for k in MOVES if glfw.get_key(h, getattr(glfw, f"KEY_{k.upper()}")) ==
                glfw.PRESS]
        x, y = glfw.get_cursor_pos(h)
        last = self._last_cursor or (x, y)
        self._last_cursor = (x, y)
        buttons = [i for i in (0, 1) if glfw.get_mouse_button(h, i) == glfw.PRESS]
        dt = 0.0 if self._last_time is None else max(0.0, now - self._last_time)
        self._last_time = now
        return self.controls.update(now, dt, keys, (x - last[0], y - last[1]), buttons)

    def close(self) -> None:
        if self._own:
            self.window.close()
