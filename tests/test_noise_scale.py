"""The noise scale is multiplier x the std of the embeddings of the corrupted (subject) ranges, over all facts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_model
from factrace.speechlm.inputs import TraceInputs
from factrace.tracing.scale import noise_scale


def _inp(kid: int, ids: list[int], corrupt: tuple[int, int]) -> TraceInputs:
    n = len(ids)
    return TraceInputs(kid, torch.tensor([ids]), corrupt, list(range(n)), [str(i) for i in ids], corrupt, n)


def test_noise_scale_uses_only_the_corrupted_ranges():
    model = tiny_model("llama")
    loaded = SimpleNamespace(model=model, device=torch.device("cpu"))
    inputs = [_inp(0, [5, 6, 7, 8], (1, 3)), _inp(1, [9, 10, 11], (0, 1))]
    res = noise_scale(loaded, inputs, 3.0)
    emb = model.get_input_embeddings().weight.detach()
    want = torch.cat([emb[[6, 7]], emb[[9]]]).std().item()
    assert res["std"] == pytest.approx(want, rel=1e-6)
    assert res["scale"] == pytest.approx(3.0 * want, rel=1e-6)
    assert res["n_tokens"] == 3 and res["n_facts"] == 2


def test_noise_scale_needs_facts():
    loaded = SimpleNamespace(model=tiny_model("llama"), device=torch.device("cpu"))
    with pytest.raises(ValueError, match="no facts"):
        noise_scale(loaded, [], 3.0)
