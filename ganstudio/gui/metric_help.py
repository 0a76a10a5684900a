"""What each curve on the chart means, in plain words: the metric list's tooltips and the
Help > "Reading the curves" page."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

#: metric name -> (short title, explanation). Models may log others; those get a
#: generic line.
METRICS: dict[str, tuple[str, str]] = {
    "loss_d": ("Discriminator loss",
               "How wrong the discriminator (the critic telling your images from generated "
               "ones) is. It does not fall steadily like in other training: a GAN is a "
               "contest, so both losses wobble. Worrying: it sits near 0 for a long time "
               "(the critic wins every round and the generator stops learning)."),
    "loss_g": ("Generator loss",
               "How well the generator fooled the critic this step. It usually rises and "
               "falls against the discriminator loss; a steady climb while the "
               "discriminator loss sinks to 0 means the critic has won."),
    "d_real": ("Critic score on your images",
               "The discriminator's average score for real images. Far above the fake "
               "score for a long time: the critic has an easy job."),
    "d_fake": ("Critic score on generated images",
               "The discriminator's average score for generated images; compare with the "
               "score on your images."),
    "d_acc_real": ("Critic accuracy on your images",
                   "Share of your images the critic calls real. Near 100 % together with "
                   "near 100 % on fakes means the critic wins too easily."),
    "d_acc_fake": ("Critic accuracy on generated images",
                   "Share of generated images the critic calls fake."),
    "d_auc": ("How well the critic separates real from generated",
              "0.5: it cannot tell them apart (balanced); 1.0: it always can (the "
              "generator gets little useful signal). Measured now and then on clean images. "
              "Staying near 1.0 raises the imbalance alarm."),
    "d_overfit": ("Critic memorising your images",
                  "The gap between the critic's scores on the images it trains on and on a "
                  "few it never sees. Near 0 is good; a growing gap means it learns your "
                  "images by heart (common with small folders): augmentation helps."),
    "diversity": ("Variety of the samples",
                  "How different the fixed-noise samples are from each other, relative to "
                  "your images (1.0: as varied as your images). Dropping towards 0: the "
                  "samples look alike (mode collapse)."),
    "kid": ("KID: distance to your images (lower is better)",
            "Kernel Inception Distance between generated images and yours, measured every "
            "few minutes on a set-aside sample. Lower is better; watch the trend, not the "
            "number. The best checkpoint is the one with the lowest KID."),
    "fid": ("FID: distance to your images (lower is better)",
            "Fréchet Inception Distance, the classic score: lower is better. With few "
            "images it is biased upwards; compare runs on the same folder only."),
    "gp": ("Gradient penalty",
           "A term that keeps the critic smooth; small and steady is normal."),
    "augment_p": ("Augmentation strength",
                  "How often images are flipped, shifted or recoloured before the critic sees "
                  "them; raised automatically when the critic starts memorising."),
    "alpha": ("Fade-in of the new resolution",
              "Progressive models grow the image size in phases; alpha goes from 0 to 1 "
              "while the new layers fade in."),
    "lr_d": ("Critic learning rate", "The discriminator's current step size."),
    "lr_g": ("Generator learning rate", "The generator's current step size."),
    "loss_rec": ("Reconstruction loss",
                 "How far an output is from its target image; this one should go down."),
}


def metric_tooltip(name: str) -> str:
    """The tooltip for a metric on the chart (a generic one for names not listed)."""
    entry = METRICS.get(name)
    if entry is None:
        return (f"{name}: a value the model logs. See Help > Reading the curves for the "
                "common ones.")
    title, text = entry
    return f"{title} ({name})\n{text}"


def curves_html() -> str:
    """The Help page: how to read a GAN's curves, then every metric explained."""
    parts = [
        "<h2>Reading the curves</h2>",
        "<p>A GAN trains two networks against each other: the <b>generator</b> makes "
        "images, the <b>discriminator</b> (the critic) tells them from yours. Their losses "
        "do not fall steadily as in other training; they wobble around each other. What "
        "matters is that neither side wins for good and that the samples keep getting "
        "better and stay varied.</p>",
        "<p><b>Good signs:</b> both losses wobble in a band; KID / FID trend downwards; "
        "diversity stays well above 0; d_auc stays below about 0.9.</p>",
        "<p><b>Warning signs:</b> the discriminator loss stuck near 0 (the critic has won); "
        "diversity dropping (samples look alike); d_overfit growing (the critic memorises a "
        "small folder). The studio marks these on the chart and suggests what to change.</p>",
        "<p>Hover a metric's name beside the chart for its meaning. Untick a metric to hide "
        "its curve; <i>Log scale</i> helps when one curve dwarfs the others.</p>",
        "<dl>",
    ]
    for name, (title, text) in METRICS.items():
        parts.append(f"<dt><b>{html.escape(name)}</b> — {html.escape(title)}</dt>"
                     f"<dd>{html.escape(text)}</dd>")
    parts.append("</dl>")
    return "\n".join(parts)


class CurvesHelp(QDialog):
    """Help > Reading the curves."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Reading the curves")
        self.setObjectName("curvesHelp")
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(False)
        self.text.setHtml(curves_html())
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addWidget(buttons)
        self.resize(560, 520)
        self.setAttribute(Qt.WA_DeleteOnClose, False)
