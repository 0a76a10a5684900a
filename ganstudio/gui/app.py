"""Studio entry point (placeholder until the studio window lands)."""
from __future__ import annotations


def run_studio(args) -> int:
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication([])
    label = QLabel("GAN Studio")
    label.setWindowTitle("GAN Studio")
    label.resize(480, 240)
    label.show()
    return app.exec()
