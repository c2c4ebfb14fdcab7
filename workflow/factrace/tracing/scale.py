"""The noise scale: ``multiplier`` x the standard deviation of the subjects' input embeddings (ROME)."""

from __future__ import annotations

import pandas as pd
import torch

from .inputs import text_inputs
from .noise import embedding_std


@torch.no_grad()
def noise_scale_text(loaded, prompts: pd.DataFrame, multiplier: float) -> dict:
    """Std over all values of the subject-token embeddings of every fact, and the scale it implies."""
    embed = loaded.model.get_input_embeddings()
    vecs = []
    for r in prompts.itertuples():
        inp = text_inputs(loaded.tokenizer, r.known_id, r.prompt, r.subject)
        s, e = inp.corrupt
        vecs.append(embed(inp.input_ids[0, s:e].to(loaded.device)).float().cpu())
    if not vecs:
        raise ValueError("no facts to estimate the noise scale from")
    allv = torch.cat(vecs)
    std = embedding_std(allv)
    return {"std": std, "multiplier": multiplier, "scale": multiplier * std, "n_tokens": int(allv.shape[0])}
