"""Stage entry points of the speech back half: fit units, speech tokens, CTC alignment, token map, figures.

Each reads and writes whole per-shard tables (atomic writes with provenance, see :mod:`factrace.io`). A fact
that fails is kept as a row with ``status = "failed"`` and a ``reason``, never silently dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import contracts
from ..io import read_table, write_table
from ..provenance import Provenance, config_hash

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def _load_audio(path: PathLike) -> tuple[np.ndarray, int]:
    from .audio import load_audio

    return load_audio(path)


def _resolve(path: str, manifest: PathLike) -> Path:
    """Audio paths in a manifest are absolute, relative to the working directory, or to the manifest's folder."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    alt = Path(manifest).parent / p
    return alt if alt.exists() else p


def _template(row: pd.Series) -> str | None:
    """The fact's template (where its subject is), if the prompts table has one."""
    t = row.get("template")
    return str(t) if isinstance(t, str) and t else None


def _prompt_rows(manifest: PathLike) -> pd.DataFrame:
    df = read_table(manifest, "audio")
    if "field" in df.columns:
        df = df[df["field"] == "prompt"]
    return df.sort_values("known_id").reset_index(drop=True)


# ---------------------------------------------------------------- fit-units


def run_fit_units(
    audio_manifests: Sequence[PathLike], out_npz: PathLike, k: int, seed: int = 0,
    deltas: bool = True, n_init: int = 3,
) -> Path:
    """Fit the ``mfcc-kmeans`` speech tokenizer on the prompt audio of all manifests; write the .npz."""
    from .units import FeatureSettings, fit_mfcc_kmeans

    waves = []
    for manifest in sorted(map(str, audio_manifests)):
        for _, row in _prompt_rows(manifest).iterrows():
            try:
                waves.append(_load_audio(_resolve(row["path"], manifest)))
            except (OSError, ValueError) as err:
                log.warning("fit-units: skipping %s (%s)", row["path"], err)
    model = fit_mfcc_kmeans(waves, k=k, seed=seed, settings=FeatureSettings(deltas=deltas), n_init=n_init)
    return model.save(out_npz)


# ---------------------------------------------------------------- speech-tokens


def run_speech_tokens(
    audio_manifest: PathLike, units_npz: PathLike | None, out_parquet: PathLike, dedup: bool, backend: str,
    checkpoints_dir: PathLike | None, device: str = "auto",
) -> Path:
    """Speech tokens of every prompt: known_id, units, run_lengths, n_frames, rate_hz, backend, dedup, status."""
    from .units import deduplicate, load_speech_tokenizer

    tok = load_speech_tokenizer(backend, units_npz=units_npz, checkpoints_dir=checkpoints_dir, device=device)
    rows = []
    for _, row in _prompt_rows(audio_manifest).iterrows():
        out = {"known_id": int(row["known_id"]), "rate_hz": float(tok.rate_hz), "backend": tok.backend,
               "dedup": bool(dedup), "status": "ok", "reason": ""}
        try:
            wave, sr = _load_audio(_resolve(row["path"], audio_manifest))
            frames = tok.encode(wave, sr)
            units, runs = deduplicate(frames) if dedup else (frames, np.ones(frames.size, dtype=np.int64))
            if frames.size == 0:
                raise ValueError("no speech tokens (audio shorter than one frame)")
        except (OSError, ValueError) as err:
            units, runs, frames = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
            out.update(status="failed", reason=str(err))
        out.update(units=[int(u) for u in units], run_lengths=[int(r) for r in runs], n_frames=int(frames.size))
        rows.append(out)
    cols = ["known_id", "units", "run_lengths", "n_frames", "rate_hz", "backend", "dedup", "status", "reason"]
    df = pd.DataFrame(rows, columns=cols).astype({"known_id": "int64", "n_frames": "int64"})
    prov = Provenance(
        stage="speech_tokens", config_hash=config_hash({"backend": backend, "dedup": dedup}),
        model_id=str(units_npz if backend == "mfcc-kmeans" else checkpoints_dir),
        extra={"backend": backend, "dedup": dedup, "n_units": int(tok.n_units)},
    )
    return write_table(df, out_parquet, None, prov)


# ---------------------------------------------------------------- align (hubert-ctc)


def run_align_ctc(
    audio_manifest: PathLike, prompts_parquet: PathLike, out_parquet: PathLike, model_dir: PathLike,
    device: str = "auto", dtype: str = "auto",
) -> Path:
    """CTC forced alignment of every prompt (method ``hubert-ctc``); failures are rows with word_index -1."""
    from .ctc import AlignmentError
    from .emissions import METHOD, align_ctc, load_emitter

    emitter = load_emitter(model_dir, device=device, dtype=dtype)
    prompts = read_table(prompts_parquet, "prompts").set_index("known_id")
    frames = []
    for _, row in _prompt_rows(audio_manifest).iterrows():
        kid = int(row["known_id"])
        try:
            if kid not in prompts.index:
                raise AlignmentError(f"known_id {kid} not in {prompts_parquet}")
            wave, sr = _load_audio(_resolve(row["path"], audio_manifest))
            df = align_ctc(wave, sr, str(prompts.loc[kid, "prompt"]), emitter, known_id=kid)
            df["status"], df["reason"] = "ok", ""
        except (AlignmentError, OSError, ValueError) as err:
            df = pd.DataFrame([{
                "known_id": kid, "word_index": -1, "word": "", "start_s": np.nan, "end_s": np.nan,
                "score": np.nan, "method": METHOD, "char_start": -1, "char_end": -1,
                "status": "failed", "reason": str(err),
            }])
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else contracts.empty("alignment")
    prov = Provenance(stage="align", config_hash=config_hash({"method": METHOD}), model_id=emitter.model_id,
                      extra={"method": METHOD, "device": str(emitter.device), "dtype": str(emitter.dtype)})
    return write_table(out, out_parquet, "alignment", prov)


# ---------------------------------------------------------------- token-map


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


def _failed_row(kid: int, model_name: str, reason: str) -> dict:
    return {"known_id": kid, "model": model_name, "text_token_index": -1, "text_token": "", "speech_start": -1,
            "speech_end": -1, "is_subject": False, "char_start": -1, "char_end": -1, "status": "failed",
            "reason": reason}


def run_token_map(
    prompts_parquet: PathLike, alignment_parquet: PathLike, speech_tokens_parquet: PathLike,
    tokenizer_dir: PathLike, model_name: str, out_parquet: PathLike, add_special_tokens: bool = False,
) -> Path:
    """Token map of every prompt (``token_map`` contract + is_subject, char span, dedup, status, reason).

    ``text_token_index`` indexes ``tokenizer(prompt, add_special_tokens=add_special_tokens)``; speech ranges
    index the speech-token sequence as stored (deduplicated when the speech-tokens table says so).
    """
    from transformers import AutoTokenizer

    from .token_map import TokenMapError, token_map_rows

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"{tokenizer_dir}: a fast tokenizer is needed for offsets (return_offsets_mapping)")
    prompts = read_table(prompts_parquet, "prompts").sort_values("known_id")
    align, align_reasons = usable_alignment(read_table(alignment_parquet, "alignment"))
    speech = read_table(speech_tokens_parquet).set_index("known_id")
    frames: list[pd.DataFrame] = []
    for _, p in prompts.iterrows():
        kid = int(p["known_id"])
        try:
            words_df = align[align["known_id"] == kid].sort_values("word_index")
            if words_df.empty:
                raise TokenMapError(f"no aligned words ({align_reasons.get(kid) or 'no alignment rows'})")
            if kid not in speech.index:
                raise TokenMapError("no speech tokens")
            sp = speech.loc[kid]
            if str(sp.get("status", "ok")) != "ok":
                raise TokenMapError(f"speech tokens failed: {sp.get('reason', '')}")
            n_frames = int(sp["n_frames"]) if "n_frames" in sp else int(np.sum(sp["run_lengths"]))
            runs = [int(r) for r in sp["run_lengths"]] if bool(sp.get("dedup", True)) else None
            enc = tokenizer(str(p["prompt"]), add_special_tokens=add_special_tokens, return_offsets_mapping=True)
            ids = enc["input_ids"]
            offsets = [tuple(map(int, o)) for o in enc["offset_mapping"]]
            words = list(zip(words_df["word"], words_df["start_s"], words_df["end_s"], strict=True))
            df = token_map_rows(
                kid, model_name, str(p["prompt"]), str(p["subject"]), tokenizer.convert_ids_to_tokens(ids),
                offsets, words, n_frames, runs, float(sp["rate_hz"]), template=_template(p),
            )
            df["status"], df["reason"] = "ok", ""
        except TokenMapError as err:
            df = pd.DataFrame([_failed_row(kid, model_name, str(err))])
        df["dedup"] = bool(speech.loc[kid].get("dedup", True)) if kid in speech.index else False
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else contracts.empty("token_map")
    prov = Provenance(
        stage="token_map", config_hash=config_hash({"add_special_tokens": add_special_tokens}),
        model_id=model_name, extra={"tokenizer_dir": str(tokenizer_dir)},
    )
    return write_table(out, out_parquet, "token_map", prov)


# ---------------------------------------------------------------- figures


def run_speech_figures(
    audio_manifest: PathLike, alignment_parquet: PathLike, speech_tokens_parquet: PathLike, out_dir: PathLike,
    n: int, token_map_parquet: PathLike | None = None,
) -> list[Path]:
    """Figure-3-style plots for the first ``n`` aligned facts (by known_id)."""
    from .figures import plot_alignment, unit_onsets

    align, _ = usable_alignment(read_table(alignment_parquet, "alignment"))
    speech = read_table(speech_tokens_parquet).set_index("known_id")
    tmap = read_table(token_map_parquet, "token_map") if token_map_parquet else None
    written: list[Path] = []
    rows = _prompt_rows(audio_manifest)
    for kid in sorted(set(align["known_id"]) & set(rows["known_id"]))[:n]:
        wave, sr = _load_audio(_resolve(rows.loc[rows["known_id"] == kid, "path"].iloc[0], audio_manifest))
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
