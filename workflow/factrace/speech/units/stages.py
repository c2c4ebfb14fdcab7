"""Stage entry points of the speech tokens: fit units, speech tokens, token map (one shard per call).

Each reads and writes whole per-shard tables (atomic writes with provenance, see :mod:`factrace.io`). A fact
that fails is kept as a row with ``status = "failed"`` and a ``reason``, never silently dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from factrace.core import contracts
from factrace.core.io import read_table, write_table
from factrace.core.provenance import Provenance, config_hash
from factrace.speech.tables import PathLike, prompt_rows, resolve_audio_path, usable_alignment

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- fit-units


def run_fit_units(
    audio_manifests: Sequence[PathLike], out_npz: PathLike, k: int, seed: int = 0,
    deltas: bool = True, n_init: int = 3,
) -> Path:
    """Fit the ``mfcc-kmeans`` speech tokenizer on the prompt audio of all manifests; write the .npz."""
    from factrace.speech.audio import load_audio
    from factrace.speech.units.tokenizer import FeatureSettings, fit_mfcc_kmeans

    waves = []
    for manifest in sorted(map(str, audio_manifests)):
        for _, row in prompt_rows(manifest).iterrows():
            try:
                waves.append(load_audio(resolve_audio_path(row["path"], manifest)))
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
    from factrace.speech.audio import load_audio
    from factrace.speech.units.tokenizer import deduplicate, load_speech_tokenizer

    tok = load_speech_tokenizer(backend, units_npz=units_npz, checkpoints_dir=checkpoints_dir, device=device)
    rows = []
    for _, row in prompt_rows(audio_manifest).iterrows():
        out = {"known_id": int(row["known_id"]), "rate_hz": float(tok.rate_hz), "backend": tok.backend,
               "dedup": bool(dedup), "status": "ok", "reason": ""}
        try:
            wave, sr = load_audio(resolve_audio_path(row["path"], audio_manifest))
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


# ---------------------------------------------------------------- token-map


def _template(row: pd.Series) -> str | None:
    """The fact's template (where its subject is), if the prompts table has one."""
    t = row.get("template")
    return str(t) if isinstance(t, str) and t else None


def _failed_row(kid: int, model_name: str, reason: str) -> dict:
    return {"known_id": kid, "model": model_name, "text_token_index": -1, "text_token": "", "token_text": "",
            "speech_start": -1, "speech_end": -1, "is_subject": False, "char_start": -1, "char_end": -1, "status": "failed",
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

    from factrace.speech.token_map import TokenMapError, token_map_rows

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
    out = pd.concat(frames, ignore_index=True) if frames else contracts.empty("token_map").assign(
        token_text=pd.Series(dtype=object))
    prov = Provenance(
        stage="token_map", config_hash=config_hash({"add_special_tokens": add_special_tokens}),
        model_id=model_name, extra={"tokenizer_dir": str(tokenizer_dir)},
    )
    return write_table(out, out_parquet, "token_map", prov)
