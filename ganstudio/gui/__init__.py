"""The studio: PySide6 + pyqtgraph views. The only layer that imports Qt."""
