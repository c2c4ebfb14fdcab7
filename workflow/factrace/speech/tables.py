"""What the speech stages share about their per-shard tables: the prompt rows of an ``audio`` manifest and where
its audio files (:func:`resolve_audio_path`) and word-onset sidecar (:func:`onsets_path`) are, and the timed rows of
an ``alignment`` table (:func:`usable_alignment`)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from factrace.core.io import read_table

PathLike = str | os.PathLike[str]


def onsets_path(manifest_path: str | os.PathLike[str]) -> Path:
    """The word-onset sidecar of an audio manifest: ``<dir>/<stem>.onsets.parquet``."""
    p = Path(manifest_path)
    return p.with_name(p.stem + ".onsets.parquet")


def resolve_audio_path(path: str, manifest: PathLike) -> Path:
    """Audio paths in a manifest are absolute, relative to the working directory, or to the manifest's folder."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    alt = Path(manifest).parent / p
    return alt if alt.exists() else p


def prompt_rows(manifest: PathLike) -> pd.DataFrame:
    """The prompt rows of an ``audio`` manifest, by known_id."""
    df = read_table(manifest, "audio")
    if "field" in df.columns:
        df = df[df["field"] == "prompt"]
    return df.sort_values("known_id").reset_index(drop=True)


def usable_alignment(align: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """Timed alignment rows (finite times; ``status == "ok"`` / ``aligned`` where those columns exist) and,
    per fact, the first non-empty reason among the rows left out."""
    mask = align["start_s"].notna() & align["end_s"].notna()
    if "status" in align.columns:
        mask &= align["status"].astype(str) == "ok"
    if "aligned" in align.columns:
        mask &= align["aligned"].astype(bool)
    reasons: dict[int, str] = {}
    if "reason" in align.columns:
        for kid, reason in zip(align.loc[~mask, "known_id"], align.loc[~mask, "reason"], strict=True):
            if reason and isinstance(reason, str) and int(kid) not in reasons:
                reasons[int(kid)] = reason
    return align[mask], reasons
