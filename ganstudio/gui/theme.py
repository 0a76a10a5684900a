"""Dark (default) and light themes: a Qt style sheet plus matching chart colours."""
from __future__ import annotations

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from .resources import icon_path, theme_path

THEMES = ("dark", "light")

CHART_COLOURS = {
    "dark": {"background": "#1b1d23", "foreground": "#c8ccd4"},
    "light": {"background": "#ffffff", "foreground": "#30343c"},
}

# Metric line colours, readable on both backgrounds. Twelve, so that a model's usual
# dozen metrics (DCGAN logs eleven) never share a colour with a loss curve.
SERIES_COLOURS = ["#4e9cff", "#ff7b54", "#5ccf7a", "#e0b020", "#c77dff", "#38c6d9",
                  "#ff5f8f", "#a0a0a0", "#b08968", "#a5d63f", "#8a7dff", "#2f9e8f"]

WARNING_COLOURS = {"nan": "#ff4d4d", "collapse": "#ffa726", "imbalance": "#ffd54f"}


def _palette(name: str) -> QPalette:
    pal = QPalette()
    if name == "dark":
        colours = {QPalette.Window: "#23252b", QPalette.WindowText: "#dfe2e8",
                   QPalette.Base: "#1b1d23", QPalette.AlternateBase: "#262930",
                   QPalette.Text: "#dfe2e8", QPalette.Button: "#2d3038",
                   QPalette.ButtonText: "#dfe2e8", QPalette.Highlight: "#3d7eea",
                   QPalette.HighlightedText: "#ffffff", QPalette.ToolTipBase: "#2d3038",
                   QPalette.ToolTipText: "#dfe2e8", QPalette.PlaceholderText: "#7d828c"}
    else:
        colours = {QPalette.Window: "#f3f4f6", QPalette.WindowText: "#1f2329",
                   QPalette.Base: "#ffffff", QPalette.AlternateBase: "#eef0f3",
                   QPalette.Text: "#1f2329", QPalette.Button: "#e8eaee",
                   QPalette.ButtonText: "#1f2329", QPalette.Highlight: "#2f6fdb",
                   QPalette.HighlightedText: "#ffffff", QPalette.ToolTipBase: "#ffffff",
                   QPalette.ToolTipText: "#1f2329", QPalette.PlaceholderText: "#8a8f98"}
    for role, colour in colours.items():
        pal.setColor(role, QColor(colour))
    return pal


def style_sheet(name: str) -> str:
    """The theme's Qt style sheet, icon paths filled in ("" when the file is missing)."""
    try:
        qss = theme_path(name).read_text(encoding="utf-8")
    except OSError:
        return ""  # a missing style sheet leaves the palette, which is readable on its own
    # Style sheets name the icons folder as @ICONS@ (url() paths are not file-relative).
    from .resources import resources_dir
    return qss.replace("@ICONS@", (resources_dir() / "icons").as_posix())


def apply_theme(app: QApplication, name: str) -> str:
    """Apply ``dark`` or ``light`` to the whole application; returns the name used."""
    name = name if name in THEMES else "dark"
    app.setStyle("Fusion")
    app.setPalette(_palette(name))
    app.setStyleSheet(style_sheet(name))
    app.setProperty("ganstudio_theme", name)
    return name


def current_theme() -> str:
    app = QApplication.instance()
    name = app.property("ganstudio_theme") if app is not None else None
    return name if name in THEMES else "dark"


def icon(name: str) -> QIcon:
    path = icon_path(name)
    return QIcon(str(path)) if path.is_file() else QIcon()
