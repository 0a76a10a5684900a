"""The studio: PySide6 + pyqtgraph views. The only layer that imports Qt."""
from .qt_compat import guard_none_refcount

guard_none_refcount()
