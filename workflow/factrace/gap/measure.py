"""The modality gap: how far apart are the text and the speech hidden states of the same fact, layer by layer?

For each fact with usable speech, the speech LM runs the text prompt (``[BOS] [Text] prompt``) and the speech
prompt (``[BOS] [Speech] [Hu..].. [Text]``) once each; the output of every decoder block (the residual stream
that the ``hidden`` trace restores; layer numbering as in the trace table) is compared at two positions:

* ``last_subject``: text - the last subject token; speech - the last speech token of the subject's range in the
  token map (the speech counterpart of that token);
* ``last``: the last position of each prompt (text: the prompt's last token; speech: the final ``[Text]``
  marker), where the next-token prediction is read.

Per (fact, layer, position kind): cosine similarity and Euclidean distance of the two vectors (float32), plus
the two norms. The paper's hypothesis (after Xiang et al., 2025): directions align with depth (cosine up)
while magnitudes diverge (Euclidean distance stays large).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch

from factrace.models.families import Layout
from factrace.speechlm.inputs import speech_inputs, text_trace_inputs_speechlm
from factrace.speechlm.prompts import markers_from_tokenizer
from factrace.speechlm.speech_data import read_speech, read_token_maps, speech_problems
from factrace.tracing.patching import hooked

log = logging.getLogger(__name__)

COLUMNS = ["known_id", "model", "layer", "position_kind", "cosine", "euclidean", "norm_text", "norm_speech"]


@torch.no_grad()
def block_outputs(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """(n_layers, n_tokens, hidden) outputs of every decoder block for one prompt (float32, CPU)."""
    layout = Layout.of(model)
    device = next(model.parameters()).device
    outs: list[torch.Tensor | None] = [None] * layout.n_layers

    def make(i: int):
        def hook(_m, _inp, out):
            h = out[0] if isinstance(out, tuple) else out
            outs[i] = h[0].detach().float().cpu()

        return hook

    handles = [b.register_forward_hook(make(i)) for i, b in enumerate(layout.blocks)]
    with hooked(handles):
        model(input_ids=input_ids.to(device), use_cache=False)
    return torch.stack(outs)  # type: ignore[arg-type]


def gap_rows(text_h: torch.Tensor, speech_h: torch.Tensor, text_pos: dict[str, int], speech_pos: dict[str, int],
             known_id: int, model: str) -> pd.DataFrame:
    rows = []
    for kind in text_pos:
        a = text_h[:, text_pos[kind]]
        b = speech_h[:, speech_pos[kind]]
        cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
        dist = (a - b).norm(dim=-1)
        for layer in range(a.shape[0]):
            rows.append({"known_id": int(known_id), "model": model, "layer": layer, "position_kind": kind,
                         "cosine": float(cos[layer]), "euclidean": float(dist[layer]),
                         "norm_text": float(a[layer].norm()), "norm_speech": float(b[layer].norm())})
    return pd.DataFrame(rows, columns=COLUMNS)


def modality_gap(
    loaded: Any, prompts_df: pd.DataFrame, speech_tokens_paths: Any, token_map_paths: Any,
    model_name: str | None = None, known_ids: Any = None,
) -> pd.DataFrame:
    """Long table (known_id, model, layer, position_kind, cosine, euclidean, norm_text, norm_speech).

    ``known_ids`` restricts the facts (e.g. those kept in both modalities); facts without usable speech are
    skipped with a log line.
    """
    model_name = model_name or loaded.spec.name
    markers = markers_from_tokenizer(loaded.tokenizer)
    speech = read_speech(speech_tokens_paths)
    tmap = read_token_maps(token_map_paths)
    if tmap is None:
        raise ValueError("the modality gap needs the token map")
    rows = prompts_df.sort_values("known_id")
    if known_ids is not None:
        rows = rows[rows["known_id"].isin({int(k) for k in known_ids})]
    frames = []
    for r in rows.itertuples():
        kid = int(r.known_id)
        problem = speech_problems(speech, tmap, kid)
        if problem:
            log.info("modality gap: skipping known_id=%d (%s)", kid, problem)
            continue
        t_inp = text_trace_inputs_speechlm(loaded.tokenizer, kid, str(r.prompt), str(r.subject), markers,
                                           template=getattr(r, "template", None))
        s_inp = speech_inputs(loaded.tokenizer, markers, kid, [int(u) for u in speech.loc[kid, "units"]],
                              tmap[tmap["known_id"] == kid])
        th = block_outputs(loaded.model, t_inp.input_ids)
        sh = block_outputs(loaded.model, s_inp.input_ids)
        frames.append(gap_rows(
            th, sh,
            {"last_subject": t_inp.corrupt[1] - 1, "last": t_inp.n_tokens - 1},
            {"last_subject": s_inp.corrupt[1] - 1, "last": s_inp.n_tokens - 1},
            kid, model_name,
        ))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("known_id", "layer") else
                                          ("object" if c in ("model", "position_kind") else "float64"))
                             for c in COLUMNS})
    return pd.concat(frames, ignore_index=True)
