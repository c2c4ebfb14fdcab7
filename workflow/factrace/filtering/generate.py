"""Greedy generation and the filter stage: which facts does a model know?

A fact is kept for a (model, modality) when the greedy continuation of its prompt states the attribute
exactly or as a close variant (see :func:`factrace.facts.match.classify`). The filter table also records
the traced target: the first token of the attribute as it follows the prompt, whose probability causal
tracing measures. A leading article is skipped (:func:`traced_attribute`): "the Moon" is traced on "Moon",
since the probability of "the" says nothing about the fact; the filter table keeps the attribute that was
traced in ``target_attribute`` (the original stays in the prompts table).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pandas as pd
import torch

from factrace.core.contracts import check
from factrace.facts.match import classify

log = logging.getLogger(__name__)

REASON_NO_MATCH = "generation does not contain the attribute"
_ARTICLE = re.compile(r"^(?:the|a|an)\s+(?=\S)", re.IGNORECASE)


def traced_attribute(attribute: str) -> str:
    """``attribute`` without a leading article ("the", "a", "an", any case), stripped of outer whitespace.

    An attribute that is only an article ("A") is kept as it is: there is nothing else to trace.
    """
    attr = str(attribute).strip()
    rest = _ARTICLE.sub("", attr, count=1).strip()
    return rest or attr


def _device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")


@torch.no_grad()
def greedy_generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy (deterministic) continuation of each prompt, as raw completion (no chat template).

    Prompts are run one at a time (no padding, so no padding side effects); the prompt is tokenised with the
    tokenizer's default special tokens, exactly as :func:`target_token` tokenises it. Only the new tokens are
    decoded, with ``skip_special_tokens=True``; the text keeps its leading space. Generation stops early at
    the end-of-sequence token.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    device = _device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        for i, prompt in enumerate(prompts):
            enc = tokenizer(prompt, return_tensors="pt")
            input_ids = enc["input_ids"].to(device)
            attention_mask = enc.get("attention_mask", torch.ones_like(input_ids)).to(device)
            gen = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad_id,
            )
            new_ids = gen[0, input_ids.shape[1]:].tolist()
            text = tokenizer.decode(new_ids, skip_special_tokens=True)
            log.debug("prompt %d/%d %r -> %r", i + 1, len(prompts), prompt, text)
            out.append(text)
    finally:
        model.train(was_training)
    return out


def target_token(tokenizer: Any, prompt: str, attribute: str) -> tuple[int, str]:
    """Id and text of the first token of ``attribute`` as it follows ``prompt`` (separated by one space), after
    a leading article is skipped (:func:`traced_attribute`).

    ``prompt`` and ``prompt + " " + attribute`` are tokenised alike; when the prompt's ids are a prefix of the
    joint ids, the next id is the target. Otherwise (a merge across the boundary) the first id of
    ``" " + attribute`` tokenised without special tokens is used. Raises ValueError for an empty attribute.
    """
    if not attribute.strip():
        raise ValueError(f"empty attribute for prompt {prompt!r}")
    attribute = traced_attribute(attribute)
    p_ids: list[int] = tokenizer(prompt)["input_ids"]
    j_ids: list[int] = tokenizer(prompt + " " + attribute.strip())["input_ids"]
    if len(j_ids) > len(p_ids) and j_ids[: len(p_ids)] == p_ids:
        tid = j_ids[len(p_ids)]
    else:
        log.warning("prompt tokens are not a prefix of prompt+attribute for %r / %r; tokenising the attribute "
                    "alone", prompt, attribute)
        a_ids: list[int] = tokenizer(" " + attribute.strip(), add_special_tokens=False)["input_ids"]
        if not a_ids:
            raise ValueError(f"attribute {attribute!r} tokenises to nothing")
        tid = a_ids[0]
    return int(tid), tokenizer.decode([tid])


def filter_facts(
    model: Any,
    tokenizer: Any,
    prompts_df: pd.DataFrame,
    model_name: str,
    modality: str,
    max_new_tokens: int,
) -> pd.DataFrame:
    """The ``filter`` table for ``prompts_df`` (columns known_id, prompt, attribute; one row per fact).

    Each prompt is continued greedily for ``max_new_tokens`` tokens and classified against its attribute;
    ``kept`` is ``match != "none"`` and ``reason`` is empty for kept facts. Rows keep the input order.
    """
    missing = {"known_id", "prompt", "attribute"} - set(prompts_df.columns)
    if missing:
        raise ValueError(f"prompts table lacks column(s) {sorted(missing)} needed for filtering")
    prompts = [str(p) for p in prompts_df["prompt"]]
    attributes = [str(a) for a in prompts_df["attribute"]]
    generations = greedy_generate(model, tokenizer, prompts, max_new_tokens)
    rows: list[dict[str, Any]] = []
    for kid, prompt, attr, gen in zip(prompts_df["known_id"], prompts, attributes, generations, strict=True):
        match = classify(gen, attr)
        tid, ttext = target_token(tokenizer, prompt, attr)
        kept = match != "none"
        rows.append({
            "known_id": int(kid), "model": model_name, "modality": modality, "generation": gen,
            "match": match, "kept": kept, "target_token_id": tid, "target_token": ttext,
            "reason": "" if kept else REASON_NO_MATCH, "target_attribute": traced_attribute(attr),
        })
    df = pd.DataFrame(rows, columns=[
        "known_id", "model", "modality", "generation", "match", "kept", "target_token_id", "target_token",
        "reason", "target_attribute",
    ])
    df = df.astype({"known_id": "int64", "target_token_id": "int64", "kept": "bool"})
    counts = df["match"].value_counts().to_dict()
    log.info("filter %s/%s: %d facts, kept %d (exact %d, partial %d, none %d)", model_name, modality, len(df),
             int(df["kept"].sum()), counts.get("exact", 0), counts.get("partial", 0), counts.get("none", 0))
    return check(df, "filter", source=f"filter[{model_name}/{modality}]")
