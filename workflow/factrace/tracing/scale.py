"""The noise scale: ``multiplier`` x the standard deviation of the subjects' input embeddings (ROME).

The std is taken over every value of the input embeddings of the corrupted (subject) range of each fact *as
it occurs in the traced prompt*: the subject tokens of a text prompt, the subject's speech tokens of a speech
prompt. One rule for both modalities, which is why it is kept.

ROME's ``collect_embedding_std`` differs in one respect for text: it embeds each subject *alone*,
``tokenizer.encode(subject)`` (so with the tokenizer's default special tokens, e.g. Llama's BOS, and without
the leading space that the subject has inside a prompt). When the subjects are given, :func:`noise_scale`
measures ROME's value on the same model too (``std_rome``, ``n_tokens_rome``) and the ratio
``std / std_rome``; the noise actually used is ``multiplier * std``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from .inputs import TraceInputs
from .method import embedding_std, noise_scale_for


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
