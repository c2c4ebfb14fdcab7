"""Quality of the speech inputs, for the report: the ASR check's word error rate (command ``wer-summary``, drawn
by :mod:`factrace.analysis.figures.commands`)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def wer_summary(asr: pd.DataFrame) -> dict[str, Any]:
    """Corpus, mean and median WER of the ASR check, its utterances and models, and how many it dropped."""
    from factrace.speech.asr.whisper import corpus_wer

    summary: dict[str, Any] = {
        "corpus_wer": corpus_wer(asr["reference"].tolist(), asr["hypothesis"].tolist()) if len(asr) else None,
        "mean_wer": float(asr["wer"].mean()) if len(asr) else None,
        "median_wer": float(asr["wer"].median()) if len(asr) else None,
        "n_utterances": len(asr),
        "model": sorted(asr["model"].unique().tolist()) if len(asr) else [],
    }
    if "kept" in asr.columns:
        summary["dropped_by_threshold"] = int((~asr["kept"].astype(bool)).sum())
    return summary
