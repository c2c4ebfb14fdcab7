"""A fact's speech as a speech-text LM reads it: the speech-token tables indexed by ``known_id``
(:func:`read_speech`), the token maps (:func:`read_token_maps`), and why a fact's speech cannot be used
(:func:`speech_problems`, '' when it can). Filtering, tracing and the modality gap read speech through these."""

from __future__ import annotations

from typing import Any

import pandas as pd


def speech_problems(speech: pd.DataFrame, tmap: pd.DataFrame | None, known_id: int) -> str:
    """Why a fact cannot be used in speech ('' when it can)."""
    from factrace.speech.token_map import TokenMapError, subject_speech_range

    if known_id not in speech.index:
        return "no speech tokens"
    sp = speech.loc[known_id]
    if str(sp.get("status", "ok")) != "ok":
        return f"speech tokens failed: {sp.get('reason', '')}"
    if len(sp["units"]) == 0:
        return "no speech tokens (empty unit sequence)"
    if tmap is None:
        return ""
    m = tmap[tmap["known_id"] == known_id]
    if m.empty:
        return "no token map rows"
    if "status" in m.columns and (m["status"].astype(str) != "ok").any():
        reason = m["reason"].astype(str).iloc[0] if "reason" in m.columns else ""
        return f"token map failed: {reason}"
    try:
        _, e = subject_speech_range(m)
    except TokenMapError as err:
        return f"token map failed: {err}"
    if e > len(sp["units"]):
        return f"token map range ends at {e} beyond the {len(sp['units'])} speech tokens"
    return ""


def read_speech(paths: Any) -> pd.DataFrame:
    """Speech-tokens tables (one path or several) indexed by known_id."""
    from factrace.core.io import read_table

    if paths is None:
        raise ValueError("no speech-tokens table given (--speech-tokens)")
    paths = [paths] if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__") else list(paths)
    df = pd.concat([read_table(p) for p in paths], ignore_index=True)
    return df.drop_duplicates("known_id", keep="last").set_index("known_id")


def read_token_maps(paths: Any) -> pd.DataFrame | None:
    from factrace.core.io import read_table

    if paths is None:
        return None
    paths = [paths] if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__") else list(paths)
    if not paths:
        return None
    return pd.concat([read_table(p, "token_map") for p in paths], ignore_index=True)
