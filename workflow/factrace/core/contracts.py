"""The Parquet data contracts: one table per stage, long/tidy form.

Each contract lists the required columns and their pandas dtype kind. Extra columns are allowed (a stage may
add detail), missing or mistyped ones are an error that names the file and the column.

:data:`DESCRIPTIONS` says in one line what every column of every contract means (and the extra columns the
stages always write, :data:`EXTRA_COLUMNS`); :data:`TABLES` says what one row of each table is. This module is
their one home: ``io.write_table`` stores them in each written table's Parquet schema (field metadata
``description``) and ``factrace describe <table.parquet | contract>`` prints them. Position conventions: every
``*_start``/``*_end`` pair is a half-open range ``[start, end)`` (``end`` exclusive), positions and token
indices count from 0. The token categories (``category``) are those of :mod:`factrace.tracing.categories`:
``before subject``, ``first subject``, ``middle subject``, ``last subject``, ``first subsequent``,
``further tokens``, ``last token``, ``prediction`` and, in trace tables only, ``unmapped``.
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


#: what one row of each table is
TABLES: dict[str, str] = {
    "prompts": "one fact of the facts file, in its shard",
    "audio": "one synthesised recording (a fact's prompt or subject)",
    "asr": "one recording transcribed by the ASR model, with its word error rate",
    "alignment": "one word of a recording, with its time span",
    "token_map": "one text token of a prompt (model tokenizer, no special tokens), with its speech-token range",
    "filter": "one fact in one model and modality: the model's generation and whether the fact is kept",
    "trace": "one traced cell: one fact, kind, layer and input position (long form)",
    "aie": "one average indirect effect: model, modality, fact set, kind, layer and token category, over facts",
    "skipped_facts": "one row of the facts file left out of the run, with the reason",
}

_CATEGORY_AIE = ("token category (factrace.tracing.categories): first subject, middle subject, last subject, "
                 "first subsequent, further tokens, last token, or prediction (the position where the target is "
                 "read; in T->T the same cells as last token, see same_cells_as)")
_CATEGORY_TRACE = ("the position's one category label: prediction (the position where the target is read: "
                   "the [Text] marker in S->T, the last token in T->T; so no T->T row is labelled last token), "
                   "unmapped (a speech position that realises no text token: <s>, [Speech], silence), before "
                   "subject, or else the most specific of first subject, middle subject, last subject, first "
                   "subsequent, further tokens, last token of its text token. The AIE analysis recomputes "
                   "categories from the position columns and does not read this one")
_KNOWN_ID = "the fact's id in the facts file"
_MODEL = "the model's name in the config (models.<name>)"
_MODALITY = "t2t (text prompt -> text) or s2t (speech prompt -> text)"
_FACT_SET = ("the facts' set: heard (their speech was in the speech LM's stage-2 training) or text_only (learnt in "
             "text only, never heard with the answer) in an S->T trace of a speech LM whose checkpoint's "
             "facts.parquet records speech_set; all otherwise (every T->T trace, and models without that record)")
_KIND = "what was restored: hidden (the residual stream), mlp or attn (a window of MLP or attention outputs)"

#: one line per column of every contract, and of the extra columns the stages always write
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "prompts": {
        "known_id": _KNOWN_ID,
        "subject": "the fact's subject, as it appears in the prompt",
        "attribute": "the fact's object (the answer the prompt asks for)",
        "prompt": "the prompt text: the template with the subject filled in",
        "template": "the prompt with {} where the subject goes",
        "relation_id": "the Wikidata relation of the fact (P17, P36, ...)",
        "shard": "the shard the fact belongs to (shard-NNNN files)",
        "prediction": "the continuation given in the facts file (informational)",
    },
    "audio": {
        "known_id": _KNOWN_ID,
        "field": "which text was synthesised: prompt or subject",
        "path": "the WAV file, relative to the working directory",
        "sample_rate": "samples per second of the WAV file (Hz)",
        "duration_s": "length of the recording in seconds",
        "backend": "the TTS backend that made it (speech.tts.backend)",
        "sha256": "SHA-256 of the WAV file's bytes",
        "text": "the text synthesised",
        "voice": "the TTS voice",
        "ok": "whether synthesis succeeded",
        "reason": "why synthesis failed (empty when ok)",
    },
    "asr": {
        "known_id": _KNOWN_ID,
        "reference": "the text that was synthesised",
        "hypothesis": "the ASR model's transcript of the recording",
        "wer": "word error rate of hypothesis against reference, after normalisation (0 = perfect; can exceed 1)",
        "model": "the ASR model",
        "reference_norm": "reference after normalisation (lower case, no punctuation or accents)",
        "hypothesis_norm": "hypothesis after normalisation",
        "field": "which recording: prompt or subject",
        "path": "the WAV file transcribed",
        "kept": "whether the recording passes the ASR check",
        "reason": "why it was not kept (empty when kept)",
    },
    "alignment": {
        "known_id": _KNOWN_ID,
        "word_index": "the word's index in the text (from 0)",
        "word": "the word",
        "start_s": "where the word starts in the recording (seconds)",
        "end_s": "where the word ends in the recording (seconds, exclusive)",
        "score": "the aligner's confidence in the word's span (method-specific; 1 for TTS onsets)",
        "method": "how the span was found (espeak-onsets, ctc, pocketsphinx, ...)",
        "reason": "why the word could not be aligned (empty when aligned)",
        "aligned": "whether the word got a span",
        "field": "which recording: prompt or subject",
    },
    "token_map": {
        "known_id": _KNOWN_ID,
        "model": _MODEL,
        "text_token_index": "the text token's index in the prompt's tokens, special tokens excluded (from 0; -1 "
                            "on a failed row)",
        "text_token": "the text token as the tokenizer stores it (raw BPE/SentencePiece: ĠPaulo, Ã£o)",
        "token_text": "text_token decoded to text (' Paulo', 'ão'; factrace.core.tokens.token_text)",
        "speech_start": "first speech token (index into the prompt's speech tokens) realising the text token",
        "speech_end": "end of the text token's speech-token range (exclusive: [speech_start, speech_end))",
        "is_subject": "whether the text token is part of the subject",
        "char_start": "the text token's first character in the prompt",
        "char_end": "end of the text token's characters in the prompt (exclusive)",
        "status": "ok, or failed (the fact has no usable map)",
        "reason": "why the map failed (empty when ok)",
        "dedup": "whether speech-token ranges index the deduplicated speech tokens",
    },
    "filter": {
        "known_id": _KNOWN_ID,
        "model": _MODEL,
        "modality": _MODALITY,
        "generation": "the model's greedy continuation of the prompt",
        "match": "how the generation matched the attribute (exact, prefix, none, ...)",
        "kept": "whether the fact is kept for tracing (the model knows it in this modality)",
        "target_token_id": "the id of the token traced: the first token of the expected answer",
        "target_token": "the traced token as the tokenizer stores it (raw BPE/SentencePiece)",
        "reason": "why the fact was not kept (empty when kept)",
        "target_attribute": "the attribute text the target token starts",
    },
    "trace": {
        "known_id": _KNOWN_ID,
        "model": _MODEL,
        "modality": _MODALITY,
        "kind": _KIND,
        "layer": "the centre layer restored (from 0; mlp and attn restore a window of layers around it)",
        "position": "the input position restored (from 0; S->T: a speech-token sequence position, <s> and "
                    "[Speech] included)",
        "category": _CATEGORY_TRACE,
        "text_token_index": "the text token the position realises (token_map numbering; -1 for none)",
        "token": "the input token at the position as the tokenizer stores it (raw BPE: ĠPaulo, Ã£o)",
        "token_text": "token decoded to text (' Paulo', 'ão'; factrace.core.tokens.token_text)",
        "prompt": "the fact's prompt text",
        "target": "the traced target token, decoded to text (the filter table's target_token)",
        "p_clean": "probability of the target token on the clean input",
        "p_corrupted": "probability of the target token with the subject's input embeddings noised",
        "p_restored": "probability of the target token, corrupted run with this cell restored to its clean value",
        "noise_scale": "standard deviation of the Gaussian noise added to the subject's embeddings",
        "samples": "noise samples averaged per cell",
        "window": "layers restored around the centre layer: 1 for hidden; for mlp and attn the model's window "
                  "(models.<name>.window, else tracing.window capped at tracing.window_max_fraction of its layers; "
                  "factrace/tracing/method.py), the one this table was traced with",
        "seed": "the seed of the noise",
        "dtype": "the dtype the model's blocks ran in (models.<name>.dtype as run on the device: float32 or "
                 "bfloat16 on the CPU); the noise, the final norm, the LM head and P(target) are float32 in any",
        "subject_start": "first corrupted position",
        "subject_end": "end of the corrupted positions (exclusive: [subject_start, subject_end))",
        "n_tokens": "number of input positions of the prompt",
        "text_subject_start": "the subject's first text token (token_map numbering)",
        "text_subject_end": "end of the subject's text tokens (exclusive)",
        "n_text_tokens": "number of text tokens of the prompt",
        "fact_set": _FACT_SET.replace("the facts' set", "the fact's set"),
    },
    "aie": {
        "model": _MODEL,
        "modality": _MODALITY,
        "kind": _KIND,
        "layer": "the centre layer restored (from 0)",
        "category": _CATEGORY_AIE,
        "aie": "average indirect effect: mean over facts of the fact's mean p_restored - p_corrupted over its "
               "positions in the category (S->T: speech tokens combined per text token first)",
        "ci_low": "lower end of the bootstrap confidence interval of aie (percentile, over facts)",
        "ci_high": "upper end of the bootstrap confidence interval of aie",
        "n": "number of facts with a position in the category at this layer",
        "fact_set": _FACT_SET + "; each set is averaged on its own (a row of Figure 2 each)",
        "same_cells_as": "the other category holding exactly the same cells (prediction <-> last token in "
                         "T->T), empty otherwise: do not count both",
        "window": "layers restored around the centre layer, as in the trace tables averaged (1 for hidden; the "
                  "model's mlp/attn window)",
    },
    "skipped_facts": {
        "file": "the facts file",
        "row": "the row's index in the facts file (from 0)",
        "known_id": "the row's known_id (null when unusable)",
        "reason": "why the row was left out",
    },
}

#: the extra columns (beyond the contract) that :data:`DESCRIPTIONS` describes, per contract
EXTRA_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c for c in cols if c not in CONTRACTS[name]) for name, cols in DESCRIPTIONS.items()
}


def describe(contract: str) -> dict[str, str]:
    """Column -> one-line description of the named contract (contract columns first, then the extras)."""
    desc = DESCRIPTIONS[contract]
    return {c: desc[c] for c in [*CONTRACTS[contract], *EXTRA_COLUMNS[contract]]}


def description(contract: str | None, column: str) -> str | None:
    """The description of ``column`` in ``contract`` (None when the column or contract has none)."""
    return DESCRIPTIONS.get(contract or "", {}).get(column)


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
