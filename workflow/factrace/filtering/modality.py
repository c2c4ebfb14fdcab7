"""Filtering per modality for speech-text LMs (Known-t2t and Known-s2t of one model).

* ``t2t`` on a speech LM: greedy continuation of ``[BOS] [Text] prompt`` (:func:`filter_text`; for a plain LM
  it falls through to :func:`factrace.filtering.generate.filter_facts` unchanged).
* ``s2t``: greedy continuation of ``[BOS] [Speech] [Hu..].. [Text]`` built from the shard's speech tokens
  (:func:`filter_speech`).

Both decode greedily with the speech and marker tokens suppressed (SpiritLM bans them when the output modality
is text) and classify the continuation with the same rule as text (:func:`factrace.facts.match.classify`).
The traced target is the first token of the attribute as it follows the *text* prompt (:func:`target_for`):
SpiritLM's answer after ``[Text]`` is text in both modalities.

A fact without usable speech tokens, or whose token map failed (no subject speech range), is a row with
``kept = False``, ``match = "none"``, an empty generation and the reason.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch

from factrace.core.contracts import check
from factrace.facts.match import classify
from factrace.filtering.generate import traced_attribute
from factrace.speechlm.prompts import (
    Markers,
    is_speech_lm,
    markers_from_tokenizer,
    speech_prompt_ids,
    text_prompt_ids,
)
from factrace.speechlm.speech_data import read_speech, read_token_maps, speech_problems

log = logging.getLogger(__name__)

COLUMNS = ["known_id", "model", "modality", "generation", "match", "kept", "target_token_id", "target_token",
           "reason", "target_attribute"]
REASON_NO_MATCH = "generation does not contain the attribute"


@torch.no_grad()
def greedy_ids(loaded: Any, ids: list[int], max_new_tokens: int, markers: Markers) -> str:
    """Greedy text continuation of the prompt ``ids`` (markers and units suppressed), decoded without specials."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    model, tok = loaded.model, loaded.tokenizer
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    eos = markers.eos if markers.eos is not None else tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    gen = model.generate(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
        do_sample=False, num_beams=1, temperature=None, top_p=None, top_k=None, pad_token_id=pad,
        eos_token_id=eos, suppress_tokens=markers.non_text(),
    )
    return tok.decode(gen[0, input_ids.shape[1]:].tolist(), skip_special_tokens=True)


def text_generation(loaded: Any, prompt: str, max_new_tokens: int, markers: Markers) -> str:
    return greedy_ids(loaded, text_prompt_ids(loaded.tokenizer, prompt, markers).ids, max_new_tokens, markers)


def target_for(tokenizer: Any, prompt: str, attribute: str, markers: Markers) -> tuple[int, str]:
    """First token of ``attribute`` after ``[Text] prompt`` (prompt and prompt + " " + attribute tokenised
    alike; on a merge across the boundary, the first token of " " + attribute)."""
    if not str(attribute).strip():
        raise ValueError(f"empty attribute for prompt {prompt!r}")
    attribute = traced_attribute(attribute)  # "the Moon" is traced on "Moon"
    p = text_prompt_ids(tokenizer, prompt, markers).ids
    j = text_prompt_ids(tokenizer, prompt + " " + str(attribute).strip(), markers).ids
    if len(j) > len(p) and j[: len(p)] == p:
        tid = j[len(p)]
    else:
        ids = tokenizer(" " + str(attribute).strip(), add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"attribute {attribute!r} tokenises to nothing")
        tid = ids[0]
    return int(tid), tokenizer.decode([tid])


def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"known_id": "int64", "target_token_id": "int64", "kept": "bool"})


def filter_text(loaded: Any, prompts_df: pd.DataFrame, model_name: str, max_new_tokens: int) -> pd.DataFrame:
    """The t2t ``filter`` table for any model: ``[Text]`` + prompt for a speech LM, the plain prompt otherwise."""
    if not is_speech_lm(loaded.tokenizer):
        from factrace.filtering.generate import filter_facts

        return filter_facts(loaded.model, loaded.tokenizer, prompts_df, model_name, "t2t", max_new_tokens)
    markers = markers_from_tokenizer(loaded.tokenizer)
    rows = []
    for r in prompts_df.itertuples():
        gen = text_generation(loaded, str(r.prompt), max_new_tokens, markers)
        match = classify(gen, str(r.attribute))
        tid, ttext = target_for(loaded.tokenizer, str(r.prompt), str(r.attribute), markers)
        kept = match != "none"
        rows.append({"known_id": int(r.known_id), "model": model_name, "modality": "t2t", "generation": gen,
                     "match": match, "kept": kept, "target_token_id": tid, "target_token": ttext,
                     "reason": "" if kept else REASON_NO_MATCH,
                     "target_attribute": traced_attribute(str(r.attribute))})
    df = _frame(rows)
    log.info("filter %s/t2t: %d facts, kept %d", model_name, len(df), int(df["kept"].sum()))
    return check(df, "filter", source=f"filter[{model_name}/t2t]")


def filter_speech(loaded: Any, prompts_df: pd.DataFrame, model_name: str, speech_tokens: Any, token_map: Any,
                  max_new_tokens: int) -> pd.DataFrame:
    """The ``filter`` table for modality ``s2t``: greedy continuation of each fact's speech prompt.

    Facts without speech tokens or with a failed token map are ``kept = False`` rows with the reason.
    """
    markers = markers_from_tokenizer(loaded.tokenizer)
    speech = read_speech(speech_tokens)
    tmap = read_token_maps(token_map)
    if tmap is None:
        log.warning("no token map given: facts are filtered without checking their subject speech range")
    rows = []
    for r in prompts_df.sort_values("known_id").itertuples():
        kid = int(r.known_id)
        tid, ttext = target_for(loaded.tokenizer, str(r.prompt), str(r.attribute), markers)
        problem = speech_problems(speech, tmap, kid)
        row = {"known_id": kid, "model": model_name, "modality": "s2t", "target_token_id": tid,
               "target_attribute": traced_attribute(str(r.attribute)),
               "target_token": ttext}
        if problem:
            rows.append({**row, "generation": "", "match": "none", "kept": False, "reason": problem})
            continue
        units = [int(u) for u in speech.loc[kid, "units"]]
        gen = greedy_ids(loaded, speech_prompt_ids(units, markers), max_new_tokens, markers)
        match = classify(gen, str(r.attribute))
        kept = match != "none"
        rows.append({**row, "generation": gen, "match": match, "kept": kept,
                     "reason": "" if kept else REASON_NO_MATCH})
    df = _frame(rows)
    counts = df["match"].value_counts().to_dict()
    log.info("filter %s/s2t: %d facts, kept %d (exact %d, partial %d), %d without usable speech", model_name,
             len(df), int(df["kept"].sum()), counts.get("exact", 0), counts.get("partial", 0),
             int((df["reason"] != "").sum() - (df["reason"] == REASON_NO_MATCH).sum()))
    return check(df, "filter", source=f"filter[{model_name}/s2t]")


def drop_by_asr(filt: pd.DataFrame, asr: pd.DataFrame) -> pd.DataFrame:
    """S->T facts whose prompt audio failed the ASR check (`speech.asr.wer_threshold`) are dropped, with a reason."""
    if "kept" not in asr.columns:
        return filt
    bad = asr.loc[~asr["kept"].astype(bool)].set_index("known_id")["reason"]
    hit = filt["known_id"].isin(bad.index) & filt["kept"]
    if not hit.any():
        return filt
    filt = filt.copy()
    filt.loc[hit, "reason"] = [f"ASR check: {bad[k]}" for k in filt.loc[hit, "known_id"]]
    filt.loc[hit, "kept"] = False
    return filt


def filter_modality(loaded: Any, prompts_df: pd.DataFrame, model_name: str, modality: str, max_new_tokens: int,
                    speech_tokens: Any = None, token_map: Any = None, asr: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``filter`` table of one (model, modality): T->T from the text prompt (with ``[Text]`` on a speech LM),
    S->T from the speech prompt, minus the facts the ASR check dropped."""
    if modality == "t2t":
        return filter_text(loaded, prompts_df, model_name, max_new_tokens)
    if modality != "s2t":
        raise ValueError(f"unknown modality {modality!r}; expected 't2t' or 's2t'")
    df = filter_speech(loaded, prompts_df, model_name, speech_tokens, token_map, max_new_tokens)
    return drop_by_asr(df, asr) if asr is not None else df
