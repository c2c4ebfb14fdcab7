"""Tracing inputs for speech-text LMs: S->T (speech prompt, subject's speech tokens corrupted) and T->T.

Speech -> text (:func:`speech_inputs`): ``input_ids = [BOS] [Speech] [Hu..]... [Text]`` (SpiritLM's layout,
:mod:`factrace.speechlm.prompts`); the corrupted range is the subject's speech-token range from the token map,
shifted by the prefix (``+2`` with BOS, ``+1`` without). Per position, ``text_token_index`` is the text token
(index into the prompt's tokens *without* special tokens, as the token map numbers them) whose speech range
contains it. Positions that realise no text token get ``-1`` ("unmapped": BOS, ``[Speech]``, silences between
or around words); they are dropped when speech positions are collapsed to text tokens. **Exception:** the final
``[Text]`` marker, the position whose next-token distribution is read (the counterpart of the last text token
in T->T), is assigned to the last text token (``n_text_tokens - 1``) with ``text_marker="last"`` (default);
``text_marker="none"`` gives it -1. Either way the analysis reports it as its own category, ``prediction``,
apart from the last word's speech tokens (:mod:`factrace.analysis.aie`).
``text_subject`` and ``n_text_tokens`` are in text-token units of the token map.

Text -> text on a speech LM (:func:`text_trace_inputs_speechlm`): ``[BOS] [Text] prompt``; the subject's
tokens are found by character offsets and shifted by the prefix; positions are their own text tokens
(identity, as :func:`text_inputs` does for plain LMs, BOS and ``[Text]`` included).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from factrace.facts.subject import SubjectNotFoundError, subject_token_range
from factrace.speechlm.prompts import (
    Markers,
    is_speech_lm,
    markers_from_tokenizer,
    speech_prompt_ids,
    text_prompt_ids,
)
from factrace.speechlm.speech_data import read_speech, read_token_maps, speech_problems

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TraceInputs:
    known_id: int
    input_ids: torch.Tensor  # (1, n_tokens)
    corrupt: tuple[int, int]  # [start, end) positions whose input embeddings get noise
    text_token_index: list[int]  # per position: the text token it realises (identity for text)
    tokens: list[str]  # per position, for plots
    text_subject: tuple[int, int]  # subject range in text-token units
    n_text_tokens: int

    @property
    def n_tokens(self) -> int:
        return int(self.input_ids.shape[-1])


def text_inputs(tokenizer, known_id: int, prompt: str, subject: str, template: str | None = None) -> TraceInputs:
    """Text->text inputs: the prompt's tokens (with the tokenizer's special tokens), the subject's tokens at the
    template's ``{}`` (:func:`factrace.facts.subject.subject_token_range`)."""
    enc = tokenizer(prompt, return_offsets_mapping=True, add_special_tokens=True)
    ids = enc["input_ids"]
    start, end = subject_token_range([tuple(o) for o in enc["offset_mapping"]], prompt, subject, template)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    n = len(ids)
    return TraceInputs(
        known_id=known_id,
        input_ids=torch.tensor([ids]),
        corrupt=(start, end),
        text_token_index=list(range(n)),
        tokens=[str(t) for t in tokens],
        text_subject=(start, end),
        n_text_tokens=n,
    )


class SpeechInputsError(ValueError):
    pass


def speech_inputs(
    tokenizer: Any, markers: Markers, known_id: int, units: Sequence[int], fact_map: pd.DataFrame,
    text_marker: str = "last", subject_margin: int = 0,
) -> TraceInputs:
    """TraceInputs of one fact's speech prompt from its units and its token-map rows; the corrupted range is the
    subject's speech range widened by ``subject_margin`` speech tokens on each side (:func:`widen`)."""
    from factrace.speech.token_map import subject_speech_range, widen

    if text_marker not in ("last", "none"):
        raise ValueError(f"text_marker must be 'last' or 'none', got {text_marker!r}")
    fm = fact_map.sort_values("text_token_index")
    fm = fm[fm["text_token_index"] >= 0]
    if fm.empty:
        raise SpeechInputsError(f"known_id={known_id}: no token map rows")
    n_text = int(fm["text_token_index"].max()) + 1
    if len(fm) != n_text:
        raise SpeechInputsError(f"known_id={known_id}: token map text_token_index is not 0..{n_text - 1}")
    s, e = subject_speech_range(fm)
    n_units = len(units)
    if e > n_units:
        raise SpeechInputsError(f"known_id={known_id}: subject speech range ends at {e} > {n_units} speech tokens")
    s, e = widen(s, e, n_units, subject_margin)
    ids = speech_prompt_ids(units, markers)
    prefix = markers.n_prefix_speech
    tti = np.full(len(ids), -1, dtype=np.int64)
    for t, a, b in zip(fm["text_token_index"], fm["speech_start"], fm["speech_end"], strict=True):
        if b > a:
            tti[prefix + int(a): prefix + int(min(b, n_units))] = int(t)
    if text_marker == "last":
        tti[-1] = n_text - 1
    subj = fm[fm["is_subject"].astype(bool)] if "is_subject" in fm.columns else fm.iloc[0:0]
    if subj.empty:
        raise SpeechInputsError(f"known_id={known_id}: token map marks no subject token")
    ts, te = int(subj["text_token_index"].min()), int(subj["text_token_index"].max()) + 1
    return TraceInputs(
        known_id=int(known_id),
        input_ids=torch.tensor([ids]),
        corrupt=(prefix + s, prefix + e),
        text_token_index=[int(x) for x in tti],
        tokens=[str(t) for t in tokenizer.convert_ids_to_tokens(ids)],
        text_subject=(ts, te),
        n_text_tokens=n_text,
    )


def speech_trace_inputs(
    loaded: Any, rows: pd.DataFrame, kept: pd.DataFrame, speech_tokens_path: Any, token_map_path: Any,
    subject_margin: int, text_marker: str = "last",
) -> list[tuple[TraceInputs, int]]:
    """(TraceInputs, target id) of every fact in ``rows`` (prompts of kept facts); target from ``kept``
    (the filter table indexed by known_id). A kept fact without usable speech raises (rerun the filter)."""
    markers = markers_from_tokenizer(loaded.tokenizer)
    speech = read_speech(speech_tokens_path)
    tmap = read_token_maps(token_map_path)
    if tmap is None:
        raise SpeechInputsError("speech tracing needs the token map (--token-map)")
    out = []
    for r in rows.sort_values("known_id").itertuples():
        kid = int(r.known_id)
        problem = speech_problems(speech, tmap, kid)
        if problem:
            raise SpeechInputsError(f"known_id={kid} was kept by the filter but {problem}; rerun the filter")
        inp = speech_inputs(loaded.tokenizer, markers, kid, [int(u) for u in speech.loc[kid, "units"]],
                            tmap[tmap["known_id"] == kid], text_marker=text_marker,
                            subject_margin=subject_margin)
        out.append((inp, int(kept.loc[kid, "target_token_id"])))
    return out


def text_trace_inputs_speechlm(loaded_or_tokenizer: Any, known_id: int, prompt: str, subject: str,
                               markers: Markers | None = None, template: str | None = None) -> TraceInputs:
    """T->T inputs on a speech LM: ``[BOS] [Text] prompt``, subject (at the template's ``{}``) located by
    offsets and shifted."""
    tok = getattr(loaded_or_tokenizer, "tokenizer", loaded_or_tokenizer)
    markers = markers or markers_from_tokenizer(tok)
    tp = text_prompt_ids(tok, prompt, markers)
    start, end = subject_token_range(tp.offsets, prompt, subject, template)  # prefix ids: empty spans, never hit
    n = len(tp.ids)
    return TraceInputs(
        known_id=int(known_id), input_ids=torch.tensor([tp.ids]), corrupt=(start, end),
        text_token_index=list(range(n)), tokens=[str(t) for t in tok.convert_ids_to_tokens(tp.ids)],
        text_subject=(start, end), n_text_tokens=n,
    )


def text_trace_inputs(loaded: Any, known_id: int, prompt: str, subject: str,
                      template: str | None = None) -> TraceInputs:
    """T->T inputs for any model: ``[Text]`` prefix on a speech LM, :func:`text_inputs` otherwise."""
    if is_speech_lm(loaded.tokenizer):
        return text_trace_inputs_speechlm(loaded, known_id, prompt, subject, template=template)
    return text_inputs(loaded.tokenizer, known_id, prompt, subject, template)


def text_rows_trace_inputs(loaded: Any, rows: pd.DataFrame, kept: pd.DataFrame) -> list[tuple[TraceInputs, int]]:
    """(TraceInputs, target id) of every fact in ``rows`` in T->T; a subject not found raises naming the fact."""
    out = []
    for r in rows.sort_values("known_id").itertuples():
        try:
            inp = text_trace_inputs(loaded, r.known_id, r.prompt, r.subject, r.template)
        except SubjectNotFoundError as err:
            raise SubjectNotFoundError(f"known_id={r.known_id}: {err}") from err
        out.append((inp, int(kept.loc[r.known_id, "target_token_id"])))
    return out


# ---- the one place where the modality picks the inputs (text prompt or speech prompt)
def trace_inputs(loaded: Any, modality: str, rows: pd.DataFrame, kept: pd.DataFrame, *, speech_tokens: Any = None,
                 token_map: Any = None, subject_margin: int | None = None) -> list[tuple[TraceInputs, int]]:
    """The tracing inputs of ``rows`` (prompts of kept facts) in ``modality`` (``t2t`` or ``s2t``; S->T needs the
    speech tables and ``subject_margin``)."""
    if modality == "t2t":
        return text_rows_trace_inputs(loaded, rows, kept)
    return speech_trace_inputs(loaded, rows, kept, speech_tokens, token_map, _s2t_margin(modality, subject_margin))


def _s2t_margin(modality: str, subject_margin: int | None) -> int:
    if modality != "s2t":
        raise ValueError(f"unknown modality {modality!r}; expected 't2t' or 's2t'")
    if subject_margin is None:
        raise ValueError("S->T inputs need the subject margin (tracing.subject_margin_s2t; --subject-margin)")
    return subject_margin
