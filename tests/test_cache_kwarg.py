"""No `past_key_values is deprecated` warnings: the fast engine's attention calls (every family) and the offline
speech LM's greedy decoding pass the key/value cache under the name the installed transformers takes."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from conftest import FAMILIES, tiny_model
from factrace.models.families.base import cache_kwarg, output_cache
from factrace.models.offline_speechlm.evaluate import greedy
from factrace.tracing.engine import trace_prompt_fast

CACHE_WARNING = r"(?s).*(past_key_values|past_key_value|cache_params).*"


class _Tok:
    eos_token_id = -1  # never generated: decoding runs max_new_tokens steps

    @staticmethod
    def decode(ids, skip_special_tokens=True) -> str:
        return " ".join(map(str, ids))


@pytest.fixture
def no_cache_warnings(caplog):
    """Turns a warning about the cache argument into an error; fails on transformers' logged one too."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=CACHE_WARNING)
        with caplog.at_level(logging.WARNING, logger="transformers"):
            yield
    logged = [r.getMessage() for r in caplog.records if "past_key_values" in r.getMessage()]
    assert not logged, logged


@pytest.mark.parametrize("family", FAMILIES)
def test_engine_attention_passes_the_cache_without_deprecation(family, no_cache_warnings) -> None:
    model = tiny_model(family, layers=2)
    ids = torch.tensor([[3, 5, 7, 9, 11]])
    noise = torch.randn(2, 2, 32)
    res = trace_prompt_fast(model, ids, (1, 3), target_id=4, noise=noise, window=1)
    assert res is not None


@pytest.mark.parametrize("family", ("llama", "gpt2"))
def test_greedy_decoding_passes_the_cache_without_deprecation(family, no_cache_warnings) -> None:
    model = tiny_model(family, layers=2)
    text = greedy(model, [3, 5, 7], 4, _Tok())
    assert len(text.split()) == 4
    # the same tokens as without a cache (full recomputation at every step)
    ids = [3, 5, 7]
    with torch.no_grad():
        for _ in range(4):
            ids.append(int(model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1].argmax()))
    assert text == " " + " ".join(map(str, ids[3:]))


def test_cache_kwarg_is_the_installed_transformers_name() -> None:
    import inspect

    model = tiny_model("llama", layers=1)
    attn = model.model.layers[0].self_attn
    name = cache_kwarg(attn)
    assert name in inspect.signature(type(attn).forward).parameters
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1, 2]]), use_cache=True)
    assert output_cache(out) is not None
