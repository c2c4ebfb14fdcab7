"""The Parquet data contracts: one table per stage, long/tidy form.

Each contract lists the required columns and their pandas dtype kind. Extra columns are allowed (a stage may
add detail), missing or mistyped ones are an error that names the file and the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# dtype kinds: "i" integer, "f" float, "O" string/object, "b" bool
CONTRACTS: dict[str, dict[str, str]] = {
    "prompts": {
        "known_id": "i", "subject": "O", "attribute": "O", "prompt": "O", "template": "O",
        "relation_id": "O", "shard": "i",
    },
    "audio": {
        "known_id": "i", "field": "O", "path": "O", "sample_rate": "i", "duration_s": "f", "backend": "O",
        "sha256": "O",
    },
    "asr": {"known_id": "i", "reference": "O", "hypothesis": "O", "wer": "f", "model": "O"},
    "alignment": {
        "known_id": "i", "word_index": "i", "word": "O", "start_s": "f", "end_s": "f", "score": "f", "method": "O",
    },
    "token_map": {
        "known_id": "i", "model": "O", "text_token_index": "i", "text_token": "O", "speech_start": "i",
        "speech_end": "i",
    },
    "filter": {
        "known_id": "i", "model": "O", "modality": "O", "generation": "O", "match": "O", "kept": "b",
        "target_token_id": "i", "target_token": "O", "reason": "O",
    },
    "trace": {
        "known_id": "i", "model": "O", "modality": "O", "kind": "O", "layer": "i", "position": "i",
        "category": "O", "text_token_index": "i", "p_clean": "f", "p_corrupted": "f", "p_restored": "f",
        "noise_scale": "f", "samples": "i", "window": "i", "seed": "i",
        # the corrupted range and length in positions, and the subject and length in text tokens (equal for
        # text; for speech the positions are speech tokens): the AIE categories are computed from these
        "subject_start": "i", "subject_end": "i", "n_tokens": "i",
        "text_subject_start": "i", "text_subject_end": "i", "n_text_tokens": "i",
    },
    "aie": {
        "model": "O", "modality": "O", "kind": "O", "layer": "i", "category": "O", "aie": "f", "ci_low": "f",
        "ci_high": "f", "n": "i",
    },
    # facts left out of the run (bad rows of the facts file), with the reason; known_id is null when unusable
    "skipped_facts": {"file": "O", "row": "i", "known_id": "i", "reason": "O"},
}


class ContractError(ValueError):
    """A table does not satisfy its stage's contract."""


@dataclass(frozen=True)
class Violation:
    column: str
    problem: str


def violations(df: pd.DataFrame, contract: str) -> list[Violation]:
    """Every way in which ``df`` breaks the named contract (empty list when it holds)."""
    spec = CONTRACTS[contract]
    out: list[Violation] = []
    for col, kind in spec.items():
        if col not in df.columns:
            out.append(Violation(col, "missing"))
            continue
        dk = df[col].dtype.kind
        ok = {
            "i": dk in "iu",
            "f": dk in "fiu",
            "b": dk == "b",
            "O": dk in "OUST" or str(df[col].dtype) in ("string", "str", "large_string"),
        }[kind]
        if not ok and len(df) > 0:
            out.append(Violation(col, f"dtype {df[col].dtype} where kind {kind!r} is required"))
    return out


def check(df: pd.DataFrame, contract: str, source: str = "<table>") -> pd.DataFrame:
    """Return ``df`` if it satisfies the contract, else raise a ContractError naming ``source``."""
    bad = violations(df, contract)
    if bad:
        detail = "; ".join(f"column {v.column!r}: {v.problem}" for v in bad)
        raise ContractError(
            f"{source}: does not satisfy the '{contract}' contract ({detail}). "
            "Delete the file and rerun the rule that makes it."
        )
    return df


def empty(contract: str) -> pd.DataFrame:
    """An empty table with the contract's columns and dtypes."""
    dtypes = {"i": "int64", "f": "float64", "O": "object", "b": "bool"}
    return pd.DataFrame({c: pd.Series(dtype=dtypes[k]) for c, k in CONTRACTS[contract].items()})
