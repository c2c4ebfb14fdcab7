"""Speech figures: alignment plots like the paper's Figure 3 (log-mel spectrogram with word boundaries and
speech-token ticks, optionally the CTC trellis with the best path above it; :func:`run_speech_figures` draws them
for a shard) and the histogram of the ASR check's WER. Written as PNG and PDF."""

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

from factrace.analysis.figures.plotting import no_data, save_figure
from factrace.core.io import read_table
from factrace.speech.tables import PathLike, prompt_rows, resolve_audio_path, usable_alignment
from factrace.speech.units.tokenizer import FeatureSettings, log_mel


def plot_alignment(
    wave: np.ndarray, sr: int, words: pd.DataFrame, out_stem: str | os.PathLike[str], *,
    unit_starts_s: Sequence[float] | None = None, title: str = "",
    trellis: np.ndarray | None = None, path_frames: Sequence[tuple[int, int]] | None = None,
    token_ranges: pd.DataFrame | None = None, rate_hz: float = 25.0, run_lengths: Sequence[int] | None = None,
) -> list[Path]:
    """Draw one utterance; returns the written paths (``out_stem``.png and .pdf).

    ``words``: alignment rows (word, start_s, end_s, score). ``unit_starts_s``: onset time of every speech token
    (after deduplication, onsets of the runs). ``trellis`` (T+1, N+1) and ``path_frames`` [(frame, label_index)]
    add the top panel. ``token_ranges``: token-map rows (speech_start, speech_end, is_subject) drawn as bars
    (green: subject) at their times; indices are frames at ``rate_hz``, or runs when ``run_lengths`` is given.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    settings = FeatureSettings(hop=160, win=400, n_fft=512, n_mels=80)  # 10 ms hop for display
    mel = log_mel(wave, sr, settings)
    duration = len(wave) / sr
    n_panels = 2 if trellis is not None else 1
    fig, axes = plt.subplots(n_panels, 1, figsize=(10, 3.2 * n_panels), squeeze=False)
    if trellis is not None:
        ax = axes[0, 0]
        shown = np.where(np.isfinite(trellis), trellis, np.nan)
        ax.imshow(shown.T, origin="lower", aspect="auto", cmap="viridis")
        if path_frames:
            f, j = zip(*path_frames, strict=True)
            ax.plot(np.asarray(f) + 1, np.asarray(j) + 1, color="white", linewidth=1)
        ax.set_xlabel("frame")
        ax.set_ylabel("label")
        ax.set_title("CTC trellis and best path")
    ax = axes[-1, 0]
    top = float(mel.max())
    ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", extent=(0, duration, 0, mel.shape[1]),
              vmin=top - 18.4, vmax=top)  # 80 dB of dynamic range (natural-log energies)
    for _, row in words.iterrows():
        ax.axvspan(row["start_s"], row["end_s"], color="white", alpha=0.12)
        ax.axvline(row["start_s"], color="white", linewidth=0.8)
        ax.axvline(row["end_s"], color="white", linewidth=0.8, linestyle="--")
        label = str(row["word"])
        if "score" in row and pd.notna(row["score"]):
            label += f"\n{float(row['score']):.2f}"
        ax.text((row["start_s"] + row["end_s"]) / 2, mel.shape[1] * 0.98, label, color="white", ha="center",
                va="top", fontsize=7)
    if unit_starts_s is not None:
        ax.vlines(list(unit_starts_s), 0, mel.shape[1] * 0.06, color="cyan", linewidth=0.6)
    if token_ranges is not None:
        edges = None
        if run_lengths is not None:
            edges = np.concatenate([[0], np.cumsum(np.asarray(run_lengths, dtype=np.int64))]) / rate_hz
        for k, (_, row) in enumerate(token_ranges.iterrows()):
            a, b = int(row["speech_start"]), int(row["speech_end"])
            s, e = (edges[a], edges[b]) if edges is not None else (a / rate_hz, b / rate_hz)
            if e > s:
                y = mel.shape[1] * (0.10 + 0.05 * (k % 2))
                ax.plot([s, e], [y, y], color="lime" if row.get("is_subject", False) else "yellow", linewidth=2)
    ax.set_xlim(0, duration)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    stem = Path(out_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=120)
    plt.close(fig)
    return paths


def unit_onsets(run_lengths: Sequence[int], rate_hz: float) -> list[float]:
    """Onset (s) of each speech token: cumulative run lengths over the frame rate."""
    rl = np.asarray(run_lengths, dtype=np.int64)
    return list(np.concatenate([[0], np.cumsum(rl)[:-1]]) / rate_hz) if rl.size else []


def run_speech_figures(
    audio_manifest: PathLike, alignment_parquet: PathLike, speech_tokens_parquet: PathLike, out_dir: PathLike,
    n: int, token_map_parquet: PathLike | None = None,
) -> list[Path]:
    """Figure-3-style plots for the first ``n`` aligned facts (by known_id)."""
    from factrace.speech.audio import load_audio

    align, _ = usable_alignment(read_table(alignment_parquet, "alignment"))
    speech = read_table(speech_tokens_parquet).set_index("known_id")
    tmap = read_table(token_map_parquet, "token_map") if token_map_parquet else None
    written: list[Path] = []
    rows = prompt_rows(audio_manifest)
    for kid in sorted(set(align["known_id"]) & set(rows["known_id"]))[:n]:
        wave, sr = load_audio(resolve_audio_path(rows.loc[rows["known_id"] == kid, "path"].iloc[0], audio_manifest))
        onsets = None
        runs = None
        rate = 25.0
        if kid in speech.index:
            rate = float(speech.loc[kid, "rate_hz"])
            runs = [int(r) for r in speech.loc[kid, "run_lengths"]]
            onsets = unit_onsets(runs, rate)
        ranges = None
        if tmap is not None:
            ranges = tmap[(tmap["known_id"] == kid) & (tmap["text_token_index"] >= 0)]
        written += plot_alignment(
            wave, sr, align[align["known_id"] == kid], Path(out_dir) / f"alignment_{kid}", unit_starts_s=onsets,
            title=f"known_id {kid}", token_ranges=ranges, rate_hz=rate, run_lengths=runs,
        )
    return written


def wer_histogram(asr_df: pd.DataFrame, out: str | os.PathLike[str], bins: int = 20) -> list[Path]:
    """Histogram of per-utterance WER (``asr`` contract), one colour per ASR model, mean WER marked."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    w = asr_df["wer"].astype(float) if len(asr_df) else pd.Series(dtype=float)
    if w.notna().sum() == 0:
        no_data(ax, "WER")
        return save_figure(fig, out)
    top = max(1.0, float(np.nanmax(w)))
    edges = np.linspace(0.0, top, bins + 1)
    models = asr_df["model"].fillna("?").astype(str) if "model" in asr_df.columns else pd.Series("?", w.index)
    palette = sns.color_palette("colorblind", n_colors=max(1, models.nunique()))
    parts = []
    for c, (m, g) in enumerate(asr_df.assign(_m=models).groupby("_m", sort=True)):
        vals = g["wer"].astype(float).dropna()
        ax.hist(vals, bins=edges, alpha=0.6, color=palette[c], label=f"{m} (n={len(vals)})")
        ax.axvline(vals.mean(), color=palette[c], ls="--", lw=1)
        parts.append(f"{m}: {100 * vals.mean():.1f}%")
    ax.set_xlabel("word error rate")
    ax.set_ylabel("utterances")
    ax.set_title("mean WER " + ", ".join(parts), fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_figure(fig, out)
