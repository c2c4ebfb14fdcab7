"""The fast tracing engine computes what the hook-based reference computes, for every family and kind."""

from __future__ import annotations

import functools
import operator

import numpy as np
import pytest
import torch
from factrace.tracing.engine import trace_prompt_fast
from factrace.tracing.patching import trace_prompt
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
)

TOL = 1e-5
V, D = 61, 32


def _configs() -> dict[str, object]:
    common = {"vocab_size": V, "initializer_range": 0.3}
    return {
        "llama": LlamaConfig(hidden_size=D, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                             num_key_value_heads=2, **common),
        "qwen2": Qwen2Config(hidden_size=D, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                             num_key_value_heads=2, **common),
        "mistral_sliding": MistralConfig(hidden_size=D, intermediate_size=48, num_hidden_layers=3,
                                         num_attention_heads=4, num_key_value_heads=4, sliding_window=4, **common),
        "gpt2": GPT2Config(n_embd=D, n_layer=3, n_head=4, n_positions=64, **common),
        "gpt_neox": GPTNeoXConfig(hidden_size=D, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                                  use_parallel_residual=True, **common),
        "gpt_neox_seq": GPTNeoXConfig(hidden_size=D, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, use_parallel_residual=False, rotary_pct=0.5,
                                      **common),
    }


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny models gain nothing from threads, and the test machine's cores are shared
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


_CACHE: dict[tuple[str, str], torch.nn.Module] = {}


def tiny(name: str, attn: str = "sdpa") -> torch.nn.Module:
    if (name, attn) not in _CACHE:
        torch.manual_seed(sum(map(ord, name)))
        _CACHE[name, attn] = AutoModelForCausalLM.from_config(_configs()[name], attn_implementation=attn).eval()
    return _CACHE[name, attn]


def prompt(model, n: int, corrupt: tuple[int, int], samples: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (1, n), generator=g)
    noise = 3.0 * torch.randn(samples, corrupt[1] - corrupt[0], D, generator=g)
    with torch.no_grad():
        target = int(model(input_ids=ids).logits[0, -1].argmax())
    return ids, noise, target


def assert_same(ref, fast, tol=TOL):
    assert abs(ref.p_clean - fast.p_clean) <= tol
    assert abs(ref.p_corrupted - fast.p_corrupted) <= tol
    assert ref.restored.keys() == fast.restored.keys()
    for k in ref.restored:
        assert ref.layers[k] == fast.layers[k]
        assert ref.restored[k].shape == fast.restored[k].shape
        assert not np.isnan(fast.restored[k]).any()
        diff = np.abs(ref.restored[k] - fast.restored[k]).max()
        assert diff <= tol, (k, diff)


@pytest.mark.parametrize("name", list(_configs()))
@pytest.mark.parametrize("corrupt", [(3, 6), (0, 2)], ids=["middle", "start"])
def test_engine_matches_reference(name, corrupt):
    model = tiny(name)
    n_layers = model.config.num_hidden_layers
    ids, noise, target = prompt(model, 9, corrupt)
    # windows: single layer, one crossing the first/last layers, one wider than the model
    for window in (1, 3, 2 * n_layers + 1):
        ref = trace_prompt(model, ids, corrupt, target, noise, window=window, max_rows=64)
        fast = trace_prompt_fast(model, ids, corrupt, target, noise, window=window, max_rows=5)
        assert_same(ref, fast)
    # the restorations must move the probability, or the comparison shows nothing
    spread = max(np.ptp(ref.restored[k]) for k in ref.restored)
    assert spread > 0.01, spread


def test_eager_attention_and_corruption_at_the_end():
    model = tiny("llama", "eager")
    corrupt = (5, 8)  # up to the last token
    ids, noise, target = prompt(model, 8, corrupt, samples=2, seed=1)
    ref = trace_prompt(model, ids, corrupt, target, noise, window=2)
    assert_same(ref, trace_prompt_fast(model, ids, corrupt, target, noise, window=2))


def test_chunking_gives_identical_results():
    model = tiny("llama")
    corrupt = (2, 5)
    ids, noise, target = prompt(model, 10, corrupt, samples=4, seed=2)
    base = trace_prompt_fast(model, ids, corrupt, target, noise, window=3, max_rows=10_000)
    for bound in ({"max_rows": 1}, {"max_rows": 7}, {"max_rows": 40}, {"max_bytes": 1},
                  {"max_bytes": 200_000}):
        other = trace_prompt_fast(model, ids, corrupt, target, noise, window=3, **bound)
        assert_same(base, other, tol=1e-6)


@pytest.mark.parametrize("name", ["llama", "gpt2", "gpt_neox"])
def test_layer_windows_merge_to_the_full_run(name):
    model = tiny(name)
    L = model.config.num_hidden_layers
    corrupt = (1, 4)
    ids, noise, target = prompt(model, 7, corrupt, seed=3)
    full = trace_prompt_fast(model, ids, corrupt, target, noise, window=3)
    parts = [trace_prompt_fast(model, ids, corrupt, target, noise, window=3, layers=ls)
             for ls in ([0, 1], list(range(2, L)))]
    for k in full.restored:
        merged = np.concatenate([p.restored[k] for p in parts])
        assert functools.reduce(operator.iadd, (p.layers[k] for p in parts), []) == full.layers[k]
        assert np.abs(merged - full.restored[k]).max() <= 1e-6
    # and a split job agrees with the reference on its own window
    ref = trace_prompt(model, ids, corrupt, target, noise, window=3, layers=[L - 1, 0], kinds=("mlp",))
    assert_same(ref, trace_prompt_fast(model, ids, corrupt, target, noise, window=3, layers=[L - 1, 0],
                                       kinds=("mlp",)))


def test_positions_before_corruption_are_the_corrupted_probability():
    model = tiny("qwen2")
    corrupt = (4, 6)
    ids, noise, target = prompt(model, 8, corrupt, seed=4)
    fast = trace_prompt_fast(model, ids, corrupt, target, noise, window=10)
    for k in fast.restored:
        assert np.all(fast.restored[k][:, :4] == fast.p_corrupted)


def test_progress_and_argument_checks():
    model = tiny("gpt2")
    corrupt = (1, 3)
    ids, noise, target = prompt(model, 5, corrupt, seed=5)
    seen = []
    trace_prompt_fast(model, ids[0], corrupt, target, noise, window=10, kinds=("hidden",), max_rows=3,
                      progress=lambda i, n: seen.append((i, n)))
    assert seen and seen[-1][0] == seen[-1][1] and [i for i, _ in seen] == list(range(1, len(seen) + 1))
    with pytest.raises(ValueError, match="noise covers"):
        trace_prompt_fast(model, ids, (1, 4), target, noise, window=10)
    with pytest.raises(ValueError, match="unknown kind"):
        trace_prompt_fast(model, ids, corrupt, target, noise, window=10, kinds=("resid",))
    with pytest.raises(ValueError, match="dtype"):
        trace_prompt_fast(model, ids, corrupt, target, noise, window=10, dtype=torch.bfloat16)
    # a layer outside the model, or twice, stops both paths (not an IndexError deep inside, or a silent row)
    L = model.config.num_hidden_layers
    for trace in (trace_prompt_fast, trace_prompt):
        with pytest.raises(ValueError, match=rf"layers \[{L}\] are outside"):
            trace(model, ids, corrupt, target, noise, window=10, layers=[0, L])
        with pytest.raises(ValueError, match="outside"):
            trace(model, ids, corrupt, target, noise, window=10, layers=[-1])
        with pytest.raises(ValueError, match="twice"):
            trace(model, ids, corrupt, target, noise, window=10, layers=[1, 1])
        with pytest.raises(TypeError):
            trace(model, ids, corrupt, target, noise, window=10, layers=[1.5])
    empty = trace_prompt_fast(model, ids, corrupt, target, noise, window=10, layers=[])
    assert empty.restored["mlp"].shape == (0, 5) and empty.layers["mlp"] == []
