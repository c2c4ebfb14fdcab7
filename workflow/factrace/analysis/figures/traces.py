"""Figures (matplotlib Agg + seaborn): every function writes ``<out>.png`` and ``<out>.pdf`` atomically.

``out`` may be given with or without a ``.png``/``.pdf`` suffix; both files are written either way and their
paths returned. The AIE heatmaps are drawn by :mod:`.heatmaps` (importable from here too); what every figure
shares is in :mod:`.plotting`. Missing data (a category a prompt set lacks, e.g. no middle subject tokens; a kind that was
not traced) is drawn as blank cells or an empty panel saying "no data", never an error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from factrace.analysis.aie import bootstrap_mean_ci, collapse_speech_positions
from factrace.analysis.figures.heatmaps import aie_heatmaps, figure2_grid  # noqa: F401  (the commands import them from here)
from factrace.analysis.figures.plotting import KIND_CMAP, KIND_LABEL, no_data, save_figure
from factrace.tracing.method import KINDS


def prompt_trace_plot(trace_df: pd.DataFrame, tokens: Sequence[str], out: str | os.PathLike[str],
                      combine: str, text_tokens: dict[int, str] | None = None) -> list[Path]:
    """ROME-style causal trace of one prompt: hidden / MLP / attention panels of p_restored (token x layer).

    ``tokens`` label the positions 0..len-1; subject tokens (``subject_start`` to ``subject_end``, exclusive)
    are marked with '*'. For a speech prompt given text-token labels (len(tokens) == n_text_tokens), the
    speech rows are first collapsed to text tokens with ``combine``. The title gives p_clean and
    p_corrupted; the colour scale starts at p_corrupted, as in ROME.
    """
    df = trace_df
    if (
        len(df)
        and "n_text_tokens" in df.columns
        and df["modality"].isin(["s2t"]).all()
        and int(df["n_text_tokens"].iloc[0]) == len(tokens)
        and ("n_tokens" not in df.columns or int(df["n_tokens"].iloc[0]) != len(tokens))
    ):
        df = collapse_speech_positions(df, combine)  # type: ignore[arg-type]
    from factrace.analysis.figures.labels import plot_labels

    labels = plot_labels(df, tokens, text_tokens)  # decoded text; speech units with their words
    if len(df) and {"subject_start", "subject_end"} <= set(df.columns):
        s, e = int(df["subject_start"].iloc[0]), int(df["subject_end"].iloc[0])
        labels = [f"{t}*" if s <= i < e else str(t) for i, t in enumerate(labels)]
    p_clean = float(df["p_clean"].iloc[0]) if len(df) else float("nan")
    p_corr = float(df["p_corrupted"].iloc[0]) if len(df) else float("nan")
    n_pos = len(labels)
    fig, axes = plt.subplots(1, 3, figsize=(15, max(2.5, 0.28 * n_pos + 1.2)), squeeze=False)
    for j, kind in enumerate(KINDS):
        ax = axes[0, j]
        ks = df[df["kind"] == kind] if len(df) else df
        title = KIND_LABEL[kind]
        if ks.empty or ks["p_restored"].notna().sum() == 0:
            no_data(ax, title)
            continue
        mat = ks.pivot_table(index="position", columns="layer", values="p_restored", aggfunc="mean")
        layers = sorted(int(x) for x in mat.columns)
        mat = mat.reindex(index=range(n_pos), columns=layers)
        arr = mat.to_numpy(dtype=float)
        vmin = p_corr if np.isfinite(p_corr) else np.nanmin(arr)
        vmax = max(float(np.nanmax(arr)), vmin + 1e-6)
        im = ax.pcolormesh(np.ma.masked_invalid(arr), cmap=KIND_CMAP[kind], vmin=vmin, vmax=vmax)
        ax.invert_yaxis()
        ax.set_yticks(np.arange(n_pos) + 0.5)
        ax.set_yticklabels(labels if j == 0 else [], fontsize=8)
        step = max(1, int(np.ceil(len(layers) / 12)))
        ax.set_xticks(np.arange(0, len(layers), step) + 0.5)
        ax.set_xticklabels([str(layers[k]) for k in range(0, len(layers), step)], fontsize=7)
        ax.set_xlabel("layer")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, label="p(target) restored")
    kid = f"known_id {int(df['known_id'].iloc[0])}: " if len(df) and "known_id" in df.columns else ""
    fig.suptitle(f"{kid}p_clean = {p_clean:.3f}, p_corrupted = {p_corr:.3f}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out)


def modality_gap_plot(gap_df: pd.DataFrame, out: str | os.PathLike[str], n_boot: int = 500,
                      seed: int = 0, ci: float = 0.95) -> list[Path]:
    """Per-layer speech-text representation gap: cosine similarity (left) and Euclidean distance (right).

    ``gap_df``: one row per (fact, layer, position) with columns layer, position (e.g. "last subject",
    "last token"), cosine, euclidean, and optionally known_id and model. Lines are means over facts, bands
    are percentile bootstrap CIs (``n_boot``, ``seed``); one line per position (and per model if several).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), squeeze=False)
    metrics = (("cosine", "cosine similarity"), ("euclidean", "Euclidean distance"))
    if gap_df.empty:
        for ax, (_m, lab) in zip(axes[0], metrics):
            no_data(ax, lab)
        return save_figure(fig, out)
    group_cols = ["model", "position"] if "model" in gap_df.columns and gap_df["model"].nunique() > 1 \
        else ["position"]
    palette = sns.color_palette("colorblind", n_colors=max(1, gap_df.groupby(group_cols).ngroups))
    for ax, (metric, lab) in zip(axes[0], metrics):
        for c, (key, g) in enumerate(gap_df.groupby(group_cols, sort=True)):
            name = " / ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
            if "known_id" in g.columns:
                mat = g.pivot_table(index="known_id", columns="layer", values=metric, aggfunc="mean")
            else:  # no fact ids: rows of one layer are independent draws
                g = g.assign(_r=g.groupby("layer").cumcount())
                mat = g.pivot_table(index="_r", columns="layer", values=metric, aggfunc="mean")
            layers = mat.columns.to_numpy(dtype=float)
            mean, lo, hi, _n = bootstrap_mean_ci(mat.to_numpy(), n_boot=n_boot, seed=seed + c, ci=ci)
            ax.plot(layers, mean, marker="o", ms=3, color=palette[c], label=name)
            ax.fill_between(layers, lo, hi, color=palette[c], alpha=0.2, linewidth=0)
        ax.set_xlabel("layer")
        ax.set_ylabel(lab)
        ax.set_title(f"{lab} (speech vs text)", fontsize=9)
    axes[0, 0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_figure(fig, out)


def prompt_trace_plots(trace: pd.DataFrame, token_map: pd.DataFrame | None, outdir: Path, prefix: str,
                       n: int, combine: str) -> list[Path]:
    """:func:`prompt_trace_plot` of the first ``n`` facts of ``trace`` as ``<prefix>_known<id>.png``; speech
    tokens are labelled with the text token (word) the token map gives them."""
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for kid in sorted(trace["known_id"].unique())[:n]:
        one = trace[trace["known_id"] == kid]
        tokens = one.drop_duplicates("position").sort_values("position")["token"].tolist()
        words = None
        if token_map is not None and len(token_map):
            m = token_map[token_map["known_id"] == kid]
            words = dict(zip(m["text_token_index"].astype(int), m["text_token"].astype(str), strict=True))
        path = outdir / f"{prefix}_known{kid}.png"
        prompt_trace_plot(one, tokens, path, combine=combine, text_tokens=words)
        written.append(path)
    return written
