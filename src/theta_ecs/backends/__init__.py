"""Backends that ship with the core: they need nothing beyond numpy."""
