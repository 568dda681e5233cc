"""The current EGL context's handles, for an OpenXR session to share (XR_MNDX_egl_enable).

The renderer's headless context is made by moderngl's glcontext, which keeps its EGL handles to
itself; a runtime needs the display, the config and the context (and ``eglGetProcAddress``) in
its ``XrGraphicsBindingEGLMNDX``. They are read back from EGL itself while the renderer's context
is current: ``eglGetCurrentDisplay``/``eglGetCurrentContext``, and the config by the
``EGL_CONFIG_ID`` the context was made with.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

from .errors import GraphicsUnavailableError

EGL_CONFIG_ID = 0x3028
EGL_NONE = 0x3038
_LIBRARIES = ("libEGL.so.1", "libEGL.so")


@dataclass(frozen=True)
class EglHandles:
    """Raw handles (addresses) of the current EGL context; ``config`` is 0 for a context made
    without one (EGL_KHR_no_config_context)."""

    display: int
    context: int
    config: int
    config_id: int
    get_proc_address: int  # the address of eglGetProcAddress


@functools.cache
def _library() -> ctypes.CDLL:
    errors = []
    for name in _LIBRARIES:
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
            continue
        lib.eglGetCurrentDisplay.restype = ctypes.c_void_p
        lib.eglGetCurrentContext.restype = ctypes.c_void_p
        lib.eglQueryContext.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                        ctypes.POINTER(ctypes.c_int)]
        lib.eglQueryContext.restype = ctypes.c_uint
        lib.eglChooseConfig.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int),
                                        ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                                        ctypes.POINTER(ctypes.c_int)]
        lib.eglChooseConfig.restype = ctypes.c_uint
        lib.eglMakeCurrent.argtypes = [ctypes.c_void_p] * 4
        lib.eglMakeCurrent.restype = ctypes.c_uint
        return lib
    raise GraphicsUnavailableError(f"no EGL library: {'; '.join(errors)} (on Debian: "
                                   "apt-get install libegl1)")


def current_egl() -> EglHandles:
    """The handles of the EGL context current on this thread (the renderer's, after it was
    made or used); GraphicsUnavailableError when none is current."""
    egl = _library()
    display = egl.eglGetCurrentDisplay() or 0
    context = egl.eglGetCurrentContext() or 0
    if not display or not context:
        raise GraphicsUnavailableError(
            "no EGL context is current: make the renderer's headless context first (a GLFW "
            "window's context is GLX or EGL by platform, and only EGL can be shared this way)")
    config_id = ctypes.c_int(0)
    if not egl.eglQueryContext(display, context, EGL_CONFIG_ID, ctypes.byref(config_id)):
        raise GraphicsUnavailableError("eglQueryContext(EGL_CONFIG_ID) failed")
    config = ctypes.c_void_p(0)
    if config_id.value > 0:
        attribs = (ctypes.c_int * 3)(EGL_CONFIG_ID, config_id.value, EGL_NONE)
        count = ctypes.c_int(0)
        if not egl.eglChooseConfig(display, attribs, ctypes.byref(config), 1,
                                   ctypes.byref(count)) or count.value != 1:
            raise GraphicsUnavailableError(
                f"no EGL config with the context's EGL_CONFIG_ID {config_id.value}")
    proc = ctypes.cast(egl.eglGetProcAddress, ctypes.c_void_p).value or 0
    return EglHandles(int(display), int(context), int(config.value or 0), config_id.value,
                      int(proc))


def make_current(egl: EglHandles) -> None:
    """Make the context of ``egl`` current again (surfaceless, as the renderer's is)."""
    lib = _library()
    if lib.eglGetCurrentContext() == egl.context:
        return
    if not lib.eglMakeCurrent(egl.display, None, None, egl.context):
        raise GraphicsUnavailableError("eglMakeCurrent failed for the renderer's context")
