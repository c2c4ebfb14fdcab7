"""Quality of the speech inputs, for the report: the ASR check's word error rate (``wer-summary``) and how far
alignment methods put word onsets from the synthesiser's own (``align-compare``)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)


def wer_summary(asr: pd.DataFrame) -> dict[str, Any]:
    """Corpus, mean and median WER of the ASR check, its utterances and models, and how many it dropped."""
    from .asr import corpus_wer

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


def onset_disagreement(reference: pd.DataFrame, others: pd.DataFrame) -> pd.DataFrame:
    """Per alignment method of ``others``: word-onset disagreement with the synthesiser's onsets (``reference``,
    its prompt rows), in ms."""
    from .aligners import boundary_disagreement

    if "field" in reference.columns:
        reference = reference[reference["field"] == "prompt"]
    rows = []
    for method, g in others.groupby("method"):
        stats = boundary_disagreement(reference.drop(columns=["field"], errors="ignore"), g)
        rows.append({"method": method, "reference": "synthesiser onsets", **stats})
    return pd.DataFrame(rows, columns=["method", "reference", "median_ms", "p95_ms", "mean_ms", "n"])


def cmd_wer_summary(args: argparse.Namespace) -> None:
    from .. import io
    from ..analysis.figures import wer_histogram

    asr = io.read_tables(args.asr, "asr")
    summary = wer_summary(asr)
    io.write_json(summary, args.out)
    wer_histogram(asr, args.figure)
    log.info("WER: %s", summary)


def cmd_align_compare(args: argparse.Namespace) -> None:
    from .. import io

    table = onset_disagreement(io.read_tables(args.reference, "alignment"), io.read_tables(args.others, "alignment"))
    with io.atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    log.info("boundary disagreement:\n%s", table.to_string(index=False))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("wer-summary", help="overall WER of the ASR check and its histogram")
    s.add_argument("--asr", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--figure", required=True)
    s.set_defaults(func=cmd_wer_summary)

    s = sub.add_parser("align-compare", help="word-onset disagreement of alignment methods vs the synthesiser")
    s.add_argument("--reference", nargs="+", required=True)
    s.add_argument("--others", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_align_compare)
