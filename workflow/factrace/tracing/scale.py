"""The noise scale: ``multiplier`` x the standard deviation of the subjects' input embeddings (ROME).

The std is taken over every value of the input embeddings of the corrupted (subject) range of each fact *as
it occurs in the traced prompt*: the subject tokens of a text prompt, the subject's speech tokens of a speech
prompt. One rule for both modalities, which is why it is kept.

ROME's ``collect_embedding_std`` differs in one respect for text: it embeds each subject *alone*,
``tokenizer.encode(subject)`` (so with the tokenizer's default special tokens, e.g. Llama's BOS, and without
the leading space that the subject has inside a prompt). When the subjects are given, :func:`noise_scale`
measures ROME's value on the same model too (``std_rome``, ``n_tokens_rome``) and the ratio
``std / std_rome``; the noise actually used is ``multiplier * std``.

The multiplier is computed (:func:`noise_json`), by the noise rule of :mod:`factrace.core.noise_rule`: the first of
``tracing.noise_multiplier`` and the ``tracing.noise_grid`` values above it under which the median over the
traced facts (``job.traced_facts``: the facts the trace jobs trace) of ``p_corrupted / p_clean`` is at most
``tracing.noise_target_ratio``. p_clean and p_corrupted are the traces' own (:func:`corrupted_ratio`): the same
noise draws (``tracing.samples``, the per-fact seed of ``method.noise_seed``) and the reference path's runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import torch

from factrace.core.noise_rule import NoiseChoice, NoiseRule, choose_multiplier, median_ratio
from factrace.speechlm.inputs import (
    SpeechInputsError,
    TraceInputs,
    _s2t_margin,
    speech_inputs,
    text_trace_inputs,
)
from factrace.speechlm.prompts import markers_from_tokenizer
from factrace.speechlm.speech_data import read_speech, read_token_maps, speech_problems
from factrace.tracing.method import embedding_std, make_noise, noise_scale_for, noise_seed

log = logging.getLogger(__name__)


@torch.no_grad()
def rome_embedding_std(loaded, subjects: Sequence[str]) -> tuple[float, int]:
    """ROME's ``collect_embedding_std``: std over all values of the input embeddings of every subject
    tokenised alone with the tokenizer's default special tokens; returns (std, number of token vectors)."""
    embed = loaded.model.get_input_embeddings()
    vecs = []
    for s in subjects:
        ids = loaded.tokenizer.encode(str(s))
        if ids:
            vecs.append(embed(torch.tensor(ids, device=loaded.device)).float().cpu())
    if not vecs:
        raise ValueError("no subjects to estimate ROME's embedding std from")
    allv = torch.cat(vecs)
    return embedding_std(allv), int(allv.shape[0])


@torch.no_grad()
def noise_scale(loaded, inputs: Iterable[TraceInputs], multiplier: float,
                subjects: Sequence[str] | None = None) -> dict:
    """Std over all values of the input embeddings of every fact's corrupted (subject) range, and the scale.

    The same rule for text (subject tokens) and speech (the subject's speech tokens): only ``inputs`` differ.
    With ``subjects`` (text), ROME's std of the subjects embedded alone is reported beside it
    (``std_rome``, ``n_tokens_rome``, ``std_over_rome``); it does not change the scale.
    """
    embed = loaded.model.get_input_embeddings()
    vecs = []
    for inp in inputs:
        s, e = inp.corrupt
        vecs.append(embed(inp.input_ids[0, s:e].to(loaded.device)).float().cpu())
    if not vecs:
        raise ValueError("no facts to estimate the noise scale from")
    allv = torch.cat(vecs)
    std = embedding_std(allv)
    out = {"std": std, "multiplier": multiplier, "scale": noise_scale_for(std, multiplier), "n_tokens": int(allv.shape[0]),
           "n_facts": len(vecs)}
    if subjects is not None and getattr(loaded, "tokenizer", None) is not None:
        std_rome, n_rome = rome_embedding_std(loaded, subjects)
        out.update(std_rome=std_rome, n_tokens_rome=n_rome, std_over_rome=std / std_rome if std_rome else None)
    return out


# ---- per modality: what the traces of that modality corrupt
def noise_scale_text_any(loaded: Any, prompts: pd.DataFrame, multiplier: float) -> dict:
    """The text noise scale, with the speech LM's ``[Text]`` layout when the model is a speech LM."""
    inputs = (text_trace_inputs(loaded, r.known_id, r.prompt, r.subject, getattr(r, "template", None))
              for r in prompts.itertuples())
    return noise_scale(loaded, inputs, multiplier, subjects=[str(s) for s in prompts["subject"]])


@torch.no_grad()
def noise_scale_speech(
    loaded: Any, prompts_df: pd.DataFrame, speech_tokens_paths: Any, token_map_paths: Any, multiplier: float,
    subject_margin: int,
) -> dict:
    """Std over all values of the input embeddings of every fact's subject speech tokens (ROME's rule on the
    speech side), and ``scale = multiplier * std``. Facts without usable speech are skipped (and counted)."""
    markers = markers_from_tokenizer(loaded.tokenizer)
    speech = read_speech(speech_tokens_paths)
    tmap = read_token_maps(token_map_paths)
    if tmap is None:
        raise SpeechInputsError("the speech noise scale needs the token map (--token-map)")
    inputs, skipped = [], 0
    for r in prompts_df.sort_values("known_id").itertuples():
        kid = int(r.known_id)
        if speech_problems(speech, tmap, kid):
            skipped += 1
            continue
        inputs.append(speech_inputs(loaded.tokenizer, markers, kid, [int(u) for u in speech.loc[kid, "units"]],
                                    tmap[tmap["known_id"] == kid], subject_margin=subject_margin))
    if not inputs:
        raise ValueError("no fact with usable speech tokens to estimate the noise scale from")
    if skipped:
        log.info("noise scale (speech): skipped %d facts without usable speech", skipped)
    return {**noise_scale(loaded, inputs, multiplier), "n_skipped": skipped}


def noise_scale_of(loaded: Any, modality: str, prompts: pd.DataFrame, multiplier: float, *,
                   speech_tokens: Any = None, token_map: Any = None, subject_margin: int | None = None) -> dict:
    """The noise scale of one (model, modality): the std of what the traces corrupt, times ``multiplier``."""
    if modality == "t2t":
        return noise_scale_text_any(loaded, prompts, multiplier)
    return noise_scale_speech(loaded, prompts, speech_tokens, token_map, multiplier,
                              _s2t_margin(modality, subject_margin))


# ---- the multiplier: the noise rule on the traced facts
def corrupted_ratio(model: Any, inputs: Sequence[tuple[TraceInputs, int]], std: float, *, samples: int,
                    seed: int, modality: str) -> Any:
    """``ratio_at(multiplier)``: the median over ``inputs`` (pairs of inputs and target id) of p_corrupted /
    p_clean with the noise ``multiplier x std`` drawn as the trace jobs draw it; p_clean is computed once."""
    from factrace.tracing.patching import clean_and_corrupted

    hidden = model.get_input_embeddings().weight.shape[1]
    clean: dict[int, float] = {}

    def ratio_at(multiplier: float) -> float | None:
        scale = noise_scale_for(std, multiplier)
        p_clean, p_corr = [], []
        for inp, target in inputs:
            s, e = inp.corrupt
            noise = make_noise(samples, e - s, hidden, scale, noise_seed(seed, inp.known_id, modality))
            pc, pr = clean_and_corrupted(model, inp.input_ids, inp.corrupt, target, noise,
                                         p_clean=clean.get(inp.known_id))
            clean[inp.known_id] = pc
            p_clean.append(pc)
            p_corr.append(pr)
        r = median_ratio(p_clean, p_corr)
        log.info("noise multiplier %g (scale %.4g): median p_corrupted / p_clean %s over %d facts", multiplier, scale,
                 "-" if r is None else f"{r:.4f}", len(p_clean))
        return r

    return ratio_at


def noise_json(loaded: Any, modality: str, prompts: pd.DataFrame, traced: Sequence[tuple[TraceInputs, int]],
               rule: NoiseRule, *, samples: int, seed: int, speech_tokens: Any = None, token_map: Any = None,
               subject_margin: int | None = None, what: str = "noise") -> dict:
    """The noise JSON of one (model, modality): the std over every fact's corrupted range (``prompts``), the
    multiplier that the noise rule chooses on the ``traced`` facts, and the scale; with the rule's settings, the
    median ratio reached, whether it reached the target, every median evaluated and the number of traced facts.
    Without traced facts (the filter kept none: the trace tables will be empty) the minimum, ``reached: false``."""
    out = noise_scale_of(loaded, modality, prompts, rule.minimum, speech_tokens=speech_tokens, token_map=token_map,
                         subject_margin=subject_margin)
    if traced:
        ratio_at = corrupted_ratio(loaded.model, traced, out["std"], samples=samples, seed=seed, modality=modality)
        choice = choose_multiplier(rule, ratio_at, what)
    else:
        log.warning("%s: the filter kept no fact to measure the noise rule on; multiplier %g (the minimum), "
                    "reached: false", what, rule.minimum)
        choice = NoiseChoice(rule.minimum, None, False, ())
    out.update(choice.as_dict())
    out.update(scale=noise_scale_for(out["std"], choice.multiplier), n_traced_facts=len(traced),
               target_ratio=rule.target_ratio, rule=rule.as_dict(), samples=samples, seed=seed)
    return out
