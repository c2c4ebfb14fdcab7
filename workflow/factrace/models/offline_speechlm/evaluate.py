"""The build's evaluation (``eval.json``): accuracy, subject ablation, noise, carry-over.

Accuracy is greedy generation scored with the filter's match rule (kept = exact or partial). For the speech LM
the speech prompt is SpiritLM's ``<s> [Speech] units [Text]``; the subject's unit range comes from eSpeak's word
onsets (:mod:`factrace.models.offline_speechlm.corpus`), widened by ``margin`` units on each side.

* **Subject ablation** (main rendering, traced facts): the subject's units replaced by random units (``draws``
  draws; accuracy against the true attribute), and by the subject units of another fact of the same template
  (traced or extra; *followed* = the answer matches the other fact's attribute and not the original one).
* **Noise**: ``p_corrupted / p_clean`` of the attribute's first token with Gaussian noise of scale
  ``multiplier x std`` of the subject's input embeddings (over the traced facts; ROME's rule, as the trace
  stage) on the subject's positions, ``samples`` draws; median over traced facts, for T->T and S->T, each
  under the multiplier that the trace stage's noise rule chooses (:mod:`factrace.models.offline_speechlm.noise`);
  when they differ, S->T is also measured under the T->T one.
* **Carry-over**: speech accuracy (main and held-out rendering) on the text-only facts that the backbone
  answers in text (their speech was trained only without the answer), beside two chance levels: the template's
  most frequent heard answer, and the subject's units replaced by random units; and the same on the
  never-heard facts (no speech at all).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

log = logging.getLogger(__name__)


def _ok(gen: str, attribute: str) -> bool:
    from factrace.facts.match import classify

    return classify(gen, attribute) != "none"


@torch.no_grad()
def greedy(model: Any, ids: list[int], max_new_tokens: int, tokenizer: Any, banned: Sequence[int] = ()) -> str:
    """Greedy text continuation (KV cache; ``banned`` ids never chosen), decoded without specials."""
    from factrace.models.families.base import cache_kwarg, output_cache

    x = torch.tensor([ids])
    out, past = [], None
    cache_arg = cache_kwarg(model)  # ``cache`` in transformers 5 (``past_key_values`` is deprecated there)
    for _ in range(max_new_tokens):
        o = model(input_ids=x, use_cache=True, **{cache_arg: past})
        past = output_cache(o)
        logits = o.logits[0, -1].clone()
        if banned:
            logits[list(banned)] = -float("inf")
        t = int(logits.argmax())
        if t == tokenizer.eos_token_id:
            break
        out.append(t)
        x = torch.tensor([[t]])
    return " " + tokenizer.decode(out, skip_special_tokens=True)


def accuracy(flags: Sequence[bool]) -> dict[str, Any]:
    return {"accuracy": round(float(np.mean(flags)), 4) if len(flags) else None, "n": len(flags),
            "correct": int(np.sum(flags))}


# ---------------------------------------------------------------------------------------------- text


def text_ids(tokenizer: Any, prompt: str, markers: Any | None) -> tuple[list[int], list[tuple[int, int]]]:
    """Prompt ids and character offsets: ``<s> [Text] words`` on a speech LM, ``<s> words`` on the backbone."""
    from factrace.speechlm.prompts import text_prompt_ids

    if markers is not None:
        tp = text_prompt_ids(tokenizer, prompt, markers)
        return tp.ids, tp.offsets
    enc = tokenizer(prompt, return_offsets_mapping=True)
    return [int(i) for i in enc["input_ids"]], [tuple(map(int, o)) for o in enc["offset_mapping"]]


def text_accuracy(model: Any, tokenizer: Any, facts: pd.DataFrame, markers: Any | None,
                  max_new_tokens: int) -> dict[int, bool]:
    banned = markers.non_text() if markers is not None else []
    return {int(r.known_id): _ok(greedy(model, text_ids(tokenizer, str(r.prompt), markers)[0], max_new_tokens,
                                        tokenizer, banned), str(r.attribute)) for r in facts.itertuples()}


def text_subject(tokenizer: Any, prompt: str, subject: str, markers: Any | None) -> tuple[list[int], int, int]:
    from factrace.facts.subject import subject_token_range

    ids, offsets = text_ids(tokenizer, prompt, markers)
    s, e = subject_token_range(offsets, prompt, subject)
    return ids, s, e


# ---------------------------------------------------------------------------------------------- noise


def first_target(tokenizer: Any, attribute: str) -> int:
    return int(tokenizer(" " + str(attribute).strip(), add_special_tokens=False)["input_ids"][0])


@torch.no_grad()
def noise_ratios(model: Any, items: Sequence[tuple[list[int], int, int, int]], multiplier: float, samples: int,
                 seed: int) -> dict[str, Any]:
    """``items`` = (ids, subject start, subject end, target id). Returns the scale and the per-fact
    p_clean, p_corrupted and their ratio (median over facts)."""
    emb = model.get_input_embeddings()
    subj = torch.cat([emb.weight[torch.tensor(ids[s:e])] for ids, s, e, _ in items])
    std = float(subj.std())
    scale = multiplier * std
    rows = []
    for k, (ids, s, e, target) in enumerate(items):
        x = emb(torch.tensor([ids]))
        p_clean = float(torch.softmax(model(inputs_embeds=x).logits[0, -1], -1)[target])
        g = np.random.Generator(np.random.PCG64([seed, k]))
        noise = torch.from_numpy(g.standard_normal((samples, e - s, x.shape[-1])).astype(np.float32)) * scale
        xs = x.repeat(samples, 1, 1)
        xs[:, s:e] += noise
        p_corr = float(torch.softmax(model(inputs_embeds=xs).logits[:, -1], -1)[:, target].mean())
        rows.append((p_clean, p_corr, p_corr / p_clean if p_clean > 0 else float("nan")))
    arr = np.array(rows) if rows else np.zeros((0, 3))
    return {"multiplier": multiplier, "std": round(std, 5), "scale": round(scale, 5), "samples": samples,
            "n": len(rows), "median_ratio": round(float(np.nanmedian(arr[:, 2])), 4) if rows else None,
            "median_p_clean": round(float(np.median(arr[:, 0])), 4) if rows else None,
            "median_p_corrupted": round(float(np.median(arr[:, 1])), 4) if rows else None}


# ---------------------------------------------------------------------------------------------- speech


def _range(row: Any, margin: int) -> tuple[int, int]:
    from factrace.speech.token_map import widen

    return widen(int(row.subj_start), int(row.subj_end), len(row.units), margin)


def speech_accuracy(model: Any, tokenizer: Any, markers: Any, facts: pd.DataFrame, corpus: pd.DataFrame,
                    max_new_tokens: int) -> dict[int, bool]:
    from factrace.speechlm.prompts import speech_prompt_ids

    attrs = dict(zip(facts["known_id"].astype(int), facts["attribute"].astype(str), strict=True))
    return {int(r.known_id): _ok(greedy(model, speech_prompt_ids(list(r.units), markers), max_new_tokens,
                                        tokenizer, markers.non_text()), attrs[int(r.known_id)])
            for r in corpus.itertuples()}


def subject_ablation(model: Any, tokenizer: Any, markers: Any, facts: pd.DataFrame, main: pd.DataFrame,
                     margin: int, draws: int, seed: int, max_new_tokens: int,
                     margins: Sequence[int] = (0, 2), known_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """Random-unit and swapped-subject ablations on the main-rendering speech of ``known_ids`` (default: the
    traced facts; module doc). The swapped-in subject is another spoken fact of the same template."""
    from factrace.speechlm.prompts import speech_prompt_ids

    by_id = facts.set_index("known_id")
    rows = {int(r.known_id): r for r in main.itertuples()}
    ids = by_id.index[by_id["set"] == "traced"] if known_ids is None else known_ids
    traced = [int(k) for k in ids if int(k) in rows]
    banned = markers.non_text()
    rng = np.random.Generator(np.random.PCG64(seed))

    def gen(units: list[int]) -> str:
        return greedy(model, speech_prompt_ids(units, markers), max_new_tokens, tokenizer, banned)

    random_acc: dict[str, Any] = {}
    for m in sorted({*margins, margin}):
        per_draw = []
        for _ in range(draws):
            ok = []
            for k in traced:
                u = list(rows[k].units)
                s, e = _range(rows[k], m)
                u[s:e] = [int(x) for x in rng.integers(0, markers.n_units, e - s)]
                ok.append(_ok(gen(u), str(by_id.loc[k, "attribute"])))
            per_draw.append(float(np.mean(ok)))
        random_acc[str(m)] = {"mean": round(float(np.mean(per_draw)), 4), "per_draw": [round(x, 4) for x in per_draw]}
    followed, kept_orig, n = 0, 0, 0
    for k in traced:
        same = [j for j in by_id.index[(by_id["template"] == by_id.loc[k, "template"])]
                if j != k and j in rows and by_id.loc[j, "attribute"] != by_id.loc[k, "attribute"]]
        if not same:
            continue
        j = int(same[int(rng.integers(0, len(same)))])
        u = list(rows[k].units)
        s, e = _range(rows[k], margin)
        sj, ej = _range(rows[j], margin)
        g = gen(u[:s] + list(rows[j].units)[sj:ej] + u[e:])
        f = _ok(g, str(by_id.loc[j, "attribute"])) and not _ok(g, str(by_id.loc[k, "attribute"]))
        followed += f
        kept_orig += _ok(g, str(by_id.loc[k, "attribute"]))
        n += 1
    return {"margin": margin, "draws": draws, "n_facts": len(traced),
            "random_units_accuracy": random_acc[str(margin)]["mean"],
            "random_units_accuracy_by_margin": random_acc,
            "swap": {"n": n, "followed": round(followed / n, 4) if n else None,
                     "kept_original": round(kept_orig / n, 4) if n else None}}


def template_prior(facts: pd.DataFrame, of: pd.DataFrame) -> dict[str, Any]:
    """Chance level of ``of``: answering each fact with the attribute most frequent among the *heard* facts of
    its template (ties: the first in sorted order), scored with the match rule."""
    heard = facts[facts["speech_set"] == "heard"]
    prior = {t: min(g["attribute"].astype(str).value_counts().items(), key=lambda kv: (-kv[1], kv[0]))[0]
             for t, g in heard.groupby("template")}
    return accuracy([t in prior and _ok(" " + prior[t], str(a)) for t, a in zip(of["template"], of["attribute"],
                                                                              strict=True)])


def speech_noise_items(tokenizer: Any, markers: Any, facts: pd.DataFrame, main: pd.DataFrame,
                       margin: int) -> list[tuple[list[int], int, int, int]]:
    from factrace.speechlm.prompts import speech_prompt_ids

    attrs = facts.set_index("known_id")["attribute"]
    items = []
    for r in main.itertuples():
        s, e = _range(r, margin)
        p = markers.n_prefix_speech
        items.append((speech_prompt_ids(list(r.units), markers), p + s, p + e,
                      first_target(tokenizer, attrs.loc[int(r.known_id)])))
    return items


def text_noise_items(tokenizer: Any, facts: pd.DataFrame, markers: Any | None) -> list[tuple[list[int], int, int, int]]:
    out = []
    for r in facts.itertuples():
        ids, s, e = text_subject(tokenizer, str(r.prompt), str(r.subject), markers)
        out.append((ids, s, e, first_target(tokenizer, str(r.attribute))))
    return out
