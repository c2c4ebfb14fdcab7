"""What every analysis figure shares: the kinds' labels and colours, the modality labels, the "no data" panel
and :func:`save_figure` (PNG and PDF, atomically). Sets the matplotlib Agg backend on import.
"""

from __future__ import annotations

import logging
import os
import re
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from factrace.core.io import atomic_path

log = logging.getLogger(__name__)

KIND_LABEL = {"hidden": "Hidden states", "mlp": "MLP", "attn": "Attention"}
KIND_CMAP = {"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}  # ROME's colours
MODALITY_LABEL = {"t2t": "T\u2192T", "s2t": "S\u2192T"}


def figure_stem(out: str | os.PathLike[str]) -> Path:
    p = Path(out)
    return p.with_suffix("") if p.suffix.lower() in (".png", ".pdf") else p


def save_figure(fig: Figure, out: str | os.PathLike[str], dpi: int = 150) -> list[Path]:
    """Write ``fig`` as PNG and PDF next to each other (atomic renames), close it, return both paths."""
    stem = figure_stem(out)
    paths = []
    for fmt in ("png", "pdf"):
        final = stem.with_name(stem.name + "." + fmt)
        with atomic_path(final) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        paths.append(final)
    plt.close(fig)
    log.info("wrote %s", ", ".join(str(p) for p in paths))
    return paths


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "x"


def no_data(ax: Axes, title: str, text: str = "no data") -> None:
    """An empty panel that says why it is empty (``text``, wrapped)."""
    ax.text(0.5, 0.5, textwrap.fill(text, 48), ha="center", va="center", transform=ax.transAxes, color="0.4",
            fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
