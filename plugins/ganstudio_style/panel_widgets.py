"""Small widgets of the Style transfer tab: picture pickers, the before/after view,
path rows with labelled browse buttons. Loaded only by the studio (imports Qt)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QScrollArea, QSizePolicy, QVBoxLayout, QWidget)

from ganstudio.core.data import IMAGE_EXTENSIONS

THUMB = 72
IMAGE_PATTERN = "Images (" + " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS)) + ")"


def is_image(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def thumbnail(path: str, size: int = THUMB) -> QPixmap:
    pix = QPixmap(path)
    if pix.isNull():
        return QPixmap()
    return pix.scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation)


def dropped_paths(event) -> list[str]:
    md = event.mimeData()
    if not md.hasUrls():
        return []
    return [u.toLocalFile() for u in md.urls() if u.isLocalFile()]


class ImageDrop(QLabel):
    """A thumbnail that accepts dropped image files and opens a file dialog on click."""

    filesChosen = Signal(list)

    def __init__(self, prompt: str, multiple: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.prompt = prompt
        self.multiple = multiple
        self.setAcceptDrops(True)
        self.setAlignment(Qt.AlignCenter)
        self.setMinimumSize(THUMB + 16, THUMB + 16)
        self.setFrameShape(QLabel.StyledPanel)
        self.setToolTip(f"{prompt}: click to choose, or drop image files here")
        self.setText(prompt)
        self.setWordWrap(True)

    def show_image(self, path: str | None) -> None:
        pix = thumbnail(path) if path else QPixmap()
        if pix.isNull():
            self.setPixmap(QPixmap())
            self.setText(self.prompt)
        else:
            self.setPixmap(pix)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt naming
        if any(is_image(p) for p in dropped_paths(event)):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [p for p in dropped_paths(event) if is_image(p)]
        if paths:
            self.filesChosen.emit(paths if self.multiple else paths[:1])
            event.acceptProposedAction()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.multiple:
            paths, _ = QFileDialog.getOpenFileNames(self, self.prompt, "", IMAGE_PATTERN)
        else:
            path, _ = QFileDialog.getOpenFileName(self, self.prompt, "", IMAGE_PATTERN)
            paths = [path] if path else []
        if paths:
            self.filesChosen.emit(paths)


class CompareView(QWidget):
    """Before/after: the result, with the original shown left of a movable split."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.before: QImage | None = None
        self.after: QImage | None = None
        self.split = 0.0  # 0: all "after"; 1: all "before"
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def set_before(self, image: QImage | None) -> None:
        self.before = image
        self.update()

    def set_after(self, image: QImage | None) -> None:
        self.after = image
        self.update()

    def set_split(self, fraction: float) -> None:
        self.split = min(1.0, max(0.0, fraction))
        self.update()

    def target_rect(self) -> QRect:
        ref = self.after or self.before
        if ref is None or ref.isNull():
            return QRect()
        scale = min(self.width() / ref.width(), self.height() / ref.height())
        w, h = max(1, int(ref.width() * scale)), max(1, int(ref.height() * scale))
        return QRect((self.width() - w) // 2, (self.height() - h) // 2, w, h)

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        rect = self.target_rect()
        if rect.isNull():
            p.drawText(self.rect(), Qt.AlignCenter, "The result appears here")
            return
        p.setRenderHint(QPainter.SmoothPixmapTransform)
        if self.after is None:  # nothing made yet: show the original whole
            p.drawImage(rect, self.before)
            return
        p.drawImage(rect, self.after)
        if self.before is not None and self.split > 0:
            cut = int(rect.width() * self.split)
            src_w = int(self.before.width() * self.split)
            p.drawImage(QRect(rect.left(), rect.top(), cut, rect.height()), self.before,
                        QRect(0, 0, src_w, self.before.height()))
            p.setPen(QPen(Qt.white, 2))
            p.drawLine(QPoint(rect.left() + cut, rect.top()),
                       QPoint(rect.left() + cut, rect.bottom()))


def path_row(edit: QLineEdit, *buttons: tuple[str, str, Callable[[], None]]) -> QWidget:
    """``edit`` followed by labelled buttons ``(text, tooltip, slot)``."""
    w = QWidget()
    h = QHBoxLayout(w)
    h.setContentsMargins(0, 0, 0, 0)
    h.addWidget(edit, 1)
    for text, tip, slot in buttons:
        b = QPushButton(text)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        h.addWidget(b)
    return w


def folder_row(edit: QLineEdit, title: str) -> QWidget:
    """``edit`` with a "Browse…" button that chooses a folder into it."""
    def pick() -> None:
        path = QFileDialog.getExistingDirectory(edit, title, edit.text())
        if path:
            edit.setText(path)
    return path_row(edit, ("Browse…", title, pick))


class Notice(QWidget):
    """A message shown next to the control that caused it (e.g. above Start), with
    buttons that act on it right there ("Download…", "Browse…")."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.label.setObjectName("styleNotice")
        self.row = QHBoxLayout()
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label)
        lay.addLayout(self.row)
        self.buttons: list[QPushButton] = []
        self.shown = False
        self.setVisible(False)

    def show_text(self, text: str, *actions: tuple[str, Callable[[], None]]) -> None:
        for b in self.buttons:
            self.row.removeWidget(b)
            b.deleteLater()
        self.buttons = []
        for title, slot in actions:
            b = QPushButton(title)
            b.clicked.connect(slot)
            self.row.addWidget(b)
            self.buttons.append(b)
        self.label.setText(text)
        self.shown = True
        self.setVisible(True)

    def clear(self) -> None:
        self.label.setText("")
        self.shown = False
        self.setVisible(False)

    @property
    def text(self) -> str:
        return self.label.text() if self.shown else ""


def scrolled(page: QWidget) -> QScrollArea:
    """``page`` in a frameless scroll area, so a tall page fits a laptop screen."""
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.NoFrame)
    scroll.setWidget(page)
    return scroll


def sentence(text: str) -> str:
    """'choose a content picture first' -> 'Choose a content picture first.'"""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
