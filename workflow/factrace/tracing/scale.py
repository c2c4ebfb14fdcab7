"""The noise scale: ``multiplier`` x the standard deviation of the subjects' input embeddings (ROME)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .inputs import TraceInputs
from .noise import embedding_std


@torch.no_grad()
def noise_scale(loaded, inputs: Iterable[TraceInputs], multiplier: float) -> dict:
    """Std over all values of the input embeddings of every fact's corrupted (subject) range, and the scale.

    The same rule for text (subject tokens) and speech (the subject's speech tokens): only ``inputs`` differ.
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
    return {"std": std, "multiplier": multiplier, "scale": multiplier * std, "n_tokens": int(allv.shape[0]),
            "n_facts": len(vecs)}
