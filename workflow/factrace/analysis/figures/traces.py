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
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from factrace.analysis.aie import bootstrap_mean_ci, collapse_speech_positions
from factrace.analysis.figures.heatmaps import aie_heatmaps, figure2_grid  # noqa: F401  (the commands import them from here)
from factrace.analysis.figures.plotting import KIND_CMAP, KIND_LABEL, no_data, save_figure
from factrace.analysis.rows import ALL, FACT_SET_WORDS
from factrace.tracing.method import KINDS


def _marks(df: pd.DataFrame, n_pos: int) -> tuple[list[bool], list[bool]]:
    """(subject, corrupted) per position 0..n_pos-1 of one fact's trace rows. Text: the subject tokens are the
    corrupted range. Speech: the subject's speech tokens (their word is a subject token) and the corrupted range
    (``subject_start`` to ``subject_end``), which adds ``tracing.subject_margin_s2t`` speech tokens each side."""
    none = [False] * n_pos
    if not len(df) or not {"subject_start", "subject_end"} <= set(df.columns):
        return none, none
    s, e = int(df["subject_start"].iloc[0]), int(df["subject_end"].iloc[0])
    corrupted = [s <= i < e for i in range(n_pos)]
    speech_rows = (
        {"text_token_index", "text_subject_start", "text_subject_end"} <= set(df.columns)
        and df["modality"].isin(["s2t"]).all()
        and ("is_prediction" not in df.columns)  # collapsed rows are already in text-token units
    )
    if not speech_rows:
        return corrupted, corrupted
    ts, te = int(df["text_subject_start"].iloc[0]), int(df["text_subject_end"].iloc[0])
    tti = df.drop_duplicates("position").set_index("position")["text_token_index"]
    subject = [ts <= int(tti.get(i, -1)) < te and int(tti.get(i, -1)) >= 0 for i in range(n_pos)]
    return subject, corrupted


def _title(df: pd.DataFrame, prompt: str | None, answer: str | None, target_token: str | None) -> str:
    kid = f"known_id {int(df['known_id'].iloc[0])}" if len(df) and "known_id" in df.columns else ""
    fact_set = str(df["fact_set"].iloc[0]) if len(df) and "fact_set" in df.columns else ALL
    if kid and fact_set in FACT_SET_WORDS and fact_set != ALL:  # a speech LM's S->T fact of one set
        kid += f" ({FACT_SET_WORDS[fact_set]})"
    p_clean = float(df["p_clean"].iloc[0]) if len(df) else float("nan")
    p_corr = float(df["p_corrupted"].iloc[0]) if len(df) else float("nan")
    spoken = len(df) and "modality" in df.columns and df["modality"].isin(["s2t"]).all()
    first = ""
    if prompt:
        first = f"\u201c{prompt}\u201d" + (" (spoken)" if spoken else "")
    if answer or target_token:
        from factrace.analysis.figures.labels import token_label

        tok = token_label(target_token) if target_token else ""
        target = answer or tok
        if tok and answer and tok.lower() != str(answer).lower():
            target += f" (first token \u201c{tok}\u201d)"
        first += f" \u2192 {target}" if first else f"target: {target}"
    second = ", ".join(x for x in (kid, f"p_clean = {p_clean:.3f}", f"p_corrupted = {p_corr:.3f}") if x)
    return f"{first}\n{second}" if first else second


def prompt_trace_plot(trace_df: pd.DataFrame, tokens: Sequence[str], out: str | os.PathLike[str],
                      combine: str, text_tokens: dict[int, str] | None = None, *, prompt: str | None = None,
                      answer: str | None = None, target_token: str | None = None) -> list[Path]:
    """ROME-style causal trace of one prompt: hidden / MLP / attention panels of p_restored (token x layer).

    ``tokens`` label the positions 0..len-1. Subject tokens are marked ``*``; in speech, the speech tokens that
    are corrupted without realising the subject (the margin, ``tracing.subject_margin_s2t``) are marked ``+``, so
    that ``*`` and ``+`` together are the corrupted range; the footnote says so. For a speech prompt given
    text-token labels (len(tokens) == n_text_tokens), the speech rows are first collapsed to text tokens with
    ``combine``. The title gives the prompt, the answer (``answer``: the attribute; ``target_token``: the token
    whose probability is traced), p_clean and p_corrupted; the colour scale starts at p_corrupted, as in ROME.
    Returns the written paths.
    """
    return draw_prompt_trace(trace_df, tokens, out, combine, text_tokens, prompt=prompt, answer=answer,
                             target_token=target_token).paths


class PromptPlot(NamedTuple):
    """What :func:`draw_prompt_trace` wrote and drew: the paths, the title and the position labels."""
    paths: list[Path]
    title: str
    labels: list[str]


def draw_prompt_trace(trace_df: pd.DataFrame, tokens: Sequence[str], out: str | os.PathLike[str], combine: str,
                      text_tokens: dict[int, str] | None = None, *, prompt: str | None = None,
                      answer: str | None = None, target_token: str | None = None) -> PromptPlot:
    """:func:`prompt_trace_plot`, returning its title and position labels with the paths."""
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
    subject, corrupted = _marks(df, len(labels))
    labels = [f"{t}*" if sub else f"{t}+" if cor else str(t)
              for t, sub, cor in zip(labels, subject, corrupted, strict=True)]
    p_corr = float(df["p_corrupted"].iloc[0]) if len(df) else float("nan")
    n_pos = len(labels)
    fig, axes = plt.subplots(1, 3, figsize=(15, max(2.5, 0.28 * n_pos + 1.6)), squeeze=False)
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
    title = _title(df, prompt, answer, target_token)
    fig.suptitle(title, fontsize=10)
    margin = any(c and not s for s, c in zip(subject, corrupted, strict=True))
    note = "* subject token (corrupted)"
    if margin:
        note += "; + speech token next to the subject, corrupted too (tracing.subject_margin_s2t)"
    fig.text(0.5, 0.0, note + "; colour scale from p_corrupted", ha="center", va="top", fontsize=8)
    fig.tight_layout()
    return PromptPlot(save_figure(fig, out), title, labels)


def modality_gap_plot(gap_df: pd.DataFrame, out: str | os.PathLike[str], n_boot: int = 500,
                      seed: int = 0, ci: float = 0.95, label: str | None = None) -> list[Path]:
    """Per-layer speech-text representation gap: cosine similarity (left) and Euclidean distance (right).

    ``gap_df``: one row per (fact, layer, position) with columns layer, position (e.g. "last subject",
    "last token"), cosine, euclidean, and optionally known_id and model. Lines are means over facts, bands
    are percentile bootstrap CIs over facts (``n_boot`` resamples, ``seed``), as the legend says; one line per
    position (and per model if several). Layers are integer ticks; the title names the model (``label``) and
    the number of facts n. Returns the written paths.
    """
    return draw_modality_gap(gap_df, out, n_boot=n_boot, seed=seed, ci=ci, label=label).paths


class GapPlot(NamedTuple):
    """What :func:`draw_modality_gap` wrote and drew: paths, title, each panel's x ticks, the legend's texts."""
    paths: list[Path]
    title: str
    xticks: list[list[float]]
    legend: list[str]


def draw_modality_gap(gap_df: pd.DataFrame, out: str | os.PathLike[str], n_boot: int = 500, seed: int = 0,
                      ci: float = 0.95, label: str | None = None) -> GapPlot:
    """:func:`modality_gap_plot`, returning what it drew with the paths."""
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.9), squeeze=False)
    metrics = (("cosine", "cosine similarity"), ("euclidean", "Euclidean distance"))
    if gap_df.empty:
        for ax, (_m, lab) in zip(axes[0], metrics):
            no_data(ax, lab)
        return GapPlot(save_figure(fig, out), "", [[], []], [])
    group_cols = ["model", "position"] if "model" in gap_df.columns and gap_df["model"].nunique() > 1 \
        else ["position"]
    palette = sns.color_palette("colorblind", n_colors=max(1, gap_df.groupby(group_cols).ngroups))
    n_facts = int(gap_df["known_id"].nunique()) if "known_id" in gap_df.columns else None
    all_layers = sorted(int(x) for x in gap_df["layer"].dropna().unique())
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
            ax.plot(layers, mean, marker="o", ms=3, color=palette[c], label=f"{name}: mean over facts")
            ax.fill_between(layers, lo, hi, color=palette[c], alpha=0.2, linewidth=0)
        step = max(1, int(np.ceil(len(all_layers) / 12)))
        ax.set_xticks(all_layers[::step])
        ax.set_xticklabels([str(x) for x in all_layers[::step]])
        ax.set_xlabel("layer")
        ax.set_ylabel(lab)
        ax.set_title(f"{lab} (speech vs text)", fontsize=9)
    handles, texts = axes[0, 0].get_legend_handles_labels()
    band = f"band: bootstrap {100 * ci:g}% CI over facts ({n_boot} resamples)"
    handles.append(Patch(facecolor="0.6", alpha=0.35, edgecolor="none"))
    texts.append(band)
    axes[0, 0].legend(handles, texts, fontsize=8, frameon=False)
    who = label or (" / ".join(sorted(str(m) for m in gap_df["model"].unique())) if "model" in gap_df.columns
                    else "")
    n_text = f"n = {n_facts} facts" if n_facts is not None else f"n = {len(gap_df)} rows"
    title = (f"{who}: " if who else "") + f"speech vs text hidden states of the same fact, per layer ({n_text} " \
        "kept in both modalities)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    xticks = [list(map(float, ax.get_xticks())) for ax in axes[0]]
    return GapPlot(save_figure(fig, out), title, xticks, texts)


def prompt_trace_plots(trace: pd.DataFrame, token_map: pd.DataFrame | None, outdir: Path, prefix: str,
                       n: int, combine: str, facts: pd.DataFrame | None = None) -> list[Path]:
    """:func:`prompt_trace_plot` of the first ``n`` facts of ``trace`` as ``<prefix>_known<id>.png``; speech
    tokens are labelled with the text token (word) the token map gives them. ``facts`` (indexed by known_id, with
    columns ``prompt``, ``attribute`` and ``target_token``, each optional: :func:`prompt_facts`) titles each plot
    with its prompt and answer."""
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
        info = facts.loc[kid] if facts is not None and kid in facts.index else {}

        def get(col, info=info):
            v = info.get(col) if hasattr(info, "get") else None
            return None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else str(v)

        prompt_trace_plot(one, tokens, path, combine=combine, text_tokens=words, prompt=get("prompt"),
                          answer=get("attribute"), target_token=get("target_token"))
        written.append(path)
    return written


def prompt_facts(prompts: pd.DataFrame | None, filters: pd.DataFrame | None = None) -> pd.DataFrame:
    """What titles a per-prompt plot, by known_id: ``prompt`` and ``attribute`` from the prompts table,
    ``target_token`` (the traced token) from one model and modality's filter table."""
    out = pd.DataFrame(index=pd.Index([], name="known_id"))
    if prompts is not None and len(prompts):
        out = prompts.drop_duplicates("known_id").set_index("known_id")[
            [c for c in ("prompt", "attribute") if c in prompts.columns]]
    if filters is not None and len(filters) and "target_token" in filters.columns:
        tok = filters.drop_duplicates("known_id").set_index("known_id")["target_token"]
        out = out.join(tok, how="outer") if len(out.columns) else tok.to_frame()
    return out
