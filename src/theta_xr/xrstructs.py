"""Plain values to and from pyopenxr's ctypes structures, for :mod:`theta_xr.openxr`.

Building these needs pyopenxr but no runtime (unlike importing :mod:`theta_xr.openxr`, which
probes for one), so the structures the frame loop hands the runtime are built and checked in
the tests here: the EGL graphics binding from the renderer's real context, the end-of-frame info
with its projection layer or none, views read back from ``XrView``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import xr

from .egl import EglHandles
from .frameloop import FrameEnd, View


def view_from_xr(v: Any) -> View:
    """An ``xr.View`` (as ``xr.locate_views`` returns them) as a :class:`View`."""
    p, o, f = v.pose.position, v.pose.orientation, v.fov
    return View((float(p.x), float(p.y), float(p.z)),
                (float(o.x), float(o.y), float(o.z), float(o.w)),
                (float(f.angle_left), float(f.angle_right), float(f.angle_up),
                 float(f.angle_down)))


def view_to_xr(view: View) -> tuple[Any, Any]:
    """A view's ``xr.Posef`` and ``xr.Fovf``."""
    return (xr.Posef(xr.Quaternionf(*view.orientation), xr.Vector3f(*view.position)),
            xr.Fovf(*view.fov))


def egl_graphics_binding(egl: EglHandles) -> Any:
    """``XrGraphicsBindingEGLMNDX`` for the renderer's EGL context (pyopenxr types its handle
    fields with PyOpenGL's opaque pointers, so addresses are cast to them)."""
    fields = dict(xr.GraphicsBindingEGLMNDX._fields_)
    return xr.GraphicsBindingEGLMNDX(
        get_proc_address=ctypes.cast(egl.get_proc_address, xr.PFN_xrEglGetProcAddressMNDX),
        display=ctypes.cast(egl.display, fields["display"]),
        config=ctypes.cast(egl.config, fields["config"]),
        context=ctypes.cast(egl.context, fields["context"]))


class FrameEndStructs:
    """``XrFrameEndInfo`` for a :class:`FrameEnd`, holding the layer structures it points to
    until xrEndFrame has returned."""

    def __init__(self, end: FrameEnd, swapchains: Sequence[Any], space: Any) -> None:
        self.layer: Any = None
        layers: list[Any] = []
        if end.views:
            views = []
            for lv in end.views:
                pose, fov = view_to_xr(lv.view)
                x, y, w, h = lv.image_rect
                views.append(xr.CompositionLayerProjectionView(
                    pose=pose, fov=fov, sub_image=xr.SwapchainSubImage(
                        swapchain=swapchains[lv.swapchain],
                        image_rect=xr.Rect2Di(xr.Offset2Di(x, y), xr.Extent2Di(w, h)))))
            self.layer = xr.CompositionLayerProjection(space=space, views=views)
            layers.append(ctypes.byref(self.layer))
        self.info = xr.FrameEndInfo(display_time=end.display_time,
                                    environment_blend_mode=xr.EnvironmentBlendMode.OPAQUE,
                                    layers=layers)
