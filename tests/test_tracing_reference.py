"""The reference tracing path: sanity identities and agreement with a one-forward-per-cell reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from factrace.models.families import Layout, UnsupportedModelError, family_of
from factrace.tracing.categories import CATEGORIES, categories_of, primary_category
from factrace.tracing.method import KINDS, make_noise, noise_seed, window_layers
from factrace.tracing.patching import add_noise_hook, clean_outputs, hooked, patch_hook, trace_prompt


def _prompt(seed: int, n: int = 7, vocab: int = 97) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (1, n), generator=g)


@torch.no_grad()
def simple_cell(model, ids, corrupt, target, noise, kind, layer, position, window):
    """One forward per noise sample for one cell: the simplest possible reading of ROME's method."""
    layout = Layout.of(model)
    _, clean = clean_outputs(model, ids, [kind])
    probs = []
    for k in range(noise.shape[0]):
        handles = [add_noise_hook(layout.embed, torch.tensor([0]), corrupt[0], noise[k : k + 1])]
        for L in window_layers(layer, layout.n_layers, kind, window):
            handles.append(patch_hook(layout.module(kind, L), torch.tensor([0]), torch.tensor([position]),
                                      clean[(kind, L)]))
        with hooked(handles):
            logits = model(input_ids=ids, use_cache=False).logits[0, -1]
        probs.append(torch.softmax(logits.float(), -1)[target].item())
    return float(np.mean(probs))


def test_family_detection(family_model):
    name, model = family_model
    layout = Layout.of(model)
    assert layout.n_layers == 4
    for kind in KINDS:
        assert layout.module(kind, 0) is not None
    assert family_of(model).name == {"qwen2": "llama"}.get(name, name)


def test_unsupported_family_names_the_fix():
    m = torch.nn.Linear(2, 2)
    m.config = type("C", (), {"model_type": "t5"})()
    with pytest.raises(UnsupportedModelError, match="factrace/models/families/"):
        family_of(m)


@pytest.mark.parametrize("seed", [0, 1])
def test_reference_matches_one_forward_per_cell(family_model, seed):
    _, model = family_model
    ids = _prompt(seed)
    corrupt = (1, 4)
    noise = make_noise(3, 3, 32, 0.5 * 20, seed)
    target = int(ids[0, 0])
    res = trace_prompt(model, ids, corrupt, target, noise, kinds=KINDS, window=3, max_rows=7)
    rng = np.random.default_rng(seed)
    for kind in KINDS:
        for _ in range(4):
            layer, pos = int(rng.integers(0, 4)), int(rng.integers(0, 7))
            want = simple_cell(model, ids, corrupt, target, noise, kind, layer, pos, 3)
            assert abs(res.restored[kind][layer, pos] - want) <= 1e-5


def test_restoring_every_position_of_a_layer_gives_clean_probability(family_model):
    _, model = family_model
    layout = Layout.of(model)
    ids = _prompt(3)
    target = 5
    noise = make_noise(4, 2, 32, 10.0, 7)
    logits, clean = clean_outputs(model, ids, ["hidden"])
    p_clean = torch.softmax(logits, -1)[target].item()
    n = ids.shape[1]
    rows = torch.arange(4).repeat_interleave(n)
    positions = torch.arange(n).repeat(4)
    for layer in range(layout.n_layers):
        handles = [
            add_noise_hook(layout.embed, torch.arange(4), 2, noise),
            patch_hook(layout.module("hidden", layer), rows, positions, clean[("hidden", layer)]),
        ]
        with hooked(handles), torch.no_grad():
            probs = torch.softmax(model(input_ids=ids.expand(4, -1), use_cache=False).logits[:, -1].float(), -1)
        assert np.allclose(probs[:, target].numpy(), p_clean, atol=1e-5)


def test_restoring_the_last_layer_at_the_last_position_gives_clean_probability(family_model):
    _, model = family_model
    ids = _prompt(4)
    res = trace_prompt(model, ids, (0, 3), 11, make_noise(3, 3, 32, 10.0, 1), kinds=("hidden",), window=1)
    assert res.restored["hidden"][-1, -1] == pytest.approx(res.p_clean, abs=1e-5)
    assert res.p_corrupted != pytest.approx(res.p_clean, abs=1e-6)


def test_zero_noise_gives_zero_indirect_effect(family_model):
    _, model = family_model
    ids = _prompt(5)
    res = trace_prompt(model, ids, (2, 4), 3, torch.zeros(2, 2, 32), kinds=KINDS, window=3)
    assert res.p_corrupted == pytest.approx(res.p_clean, abs=1e-6)
    for kind in KINDS:
        assert np.allclose(res.restored[kind] - res.p_corrupted, 0.0, atol=1e-6)


def test_layer_subsets_equal_the_full_run():
    model = tiny_model_llama()
    ids = _prompt(6)
    noise = make_noise(2, 2, 32, 10.0, 3)
    full = trace_prompt(model, ids, (1, 3), 9, noise, kinds=("mlp",), window=3)
    lo = trace_prompt(model, ids, (1, 3), 9, noise, kinds=("mlp",), window=3, layers=range(2))
    hi = trace_prompt(model, ids, (1, 3), 9, noise, kinds=("mlp",), window=3, layers=range(2, 4))
    merged = np.vstack([lo.restored["mlp"], hi.restored["mlp"]])
    assert np.array_equal(merged, full.restored["mlp"])


def tiny_model_llama():
    from conftest import tiny_model

    return tiny_model("llama")


def test_window_layers_match_rome():
    assert list(window_layers(0, 30, "mlp", 10)) == list(range(5))
    assert list(window_layers(15, 30, "attn", 10)) == list(range(10, 20))
    assert list(window_layers(29, 30, "mlp", 10)) == list(range(24, 30))
    assert list(window_layers(7, 30, "hidden", 10)) == [7]


def test_noise_is_seeded_and_scaled():
    a = make_noise(10, 3, 8, 2.0, noise_seed(1, 42))
    b = make_noise(10, 3, 8, 2.0, noise_seed(1, 42))
    c = make_noise(10, 3, 8, 2.0, noise_seed(1, 43))
    assert torch.equal(a, b) and not torch.equal(a, c)
    big = make_noise(200, 10, 50, 3.0, 0)
    assert float(big.std()) == pytest.approx(3.0, rel=0.02)


@pytest.mark.parametrize(
    ("start", "end", "n", "expected"),
    [
        (2, 5, 8, {2: ["first subject"], 3: ["middle subject"], 4: ["last subject"], 5: ["first subsequent"],
                   6: ["further tokens"], 7: ["last token"], 0: []}),
        (1, 2, 4, {1: ["first subject", "last subject"], 2: ["first subsequent"], 3: ["last token"]}),
        (0, 2, 3, {2: ["first subsequent", "last token"]}),
    ],
)
def test_token_categories(start, end, n, expected):
    for pos, cats in expected.items():
        assert categories_of(pos, start, end, n) == cats
        assert set(cats) <= set(CATEGORIES)
    assert primary_category(0, 2, 5, 8) == "before subject"


@pytest.mark.parametrize("shape", [(3, 50), (2, 37, 6000), (700, 1000)])
def test_target_probability_is_the_softmax_entry_at_any_vocabulary_and_row_count(shape):
    """The score equals the softmax entry whether the logsumexp runs in one call or chunk by chunk (a vocabulary
    and row count above LSE_CHUNK_ELEMENTS take the chunked path), for any leading dimensions."""
    from factrace.tracing import method

    g = torch.Generator().manual_seed(sum(shape))
    logits = torch.randn(*shape, generator=g, dtype=torch.float64).float() * 4
    target = shape[-1] - 2
    got = method.target_probability(logits, target)
    want = torch.softmax(logits.double(), dim=-1)[..., target]
    assert got.shape == shape[:-1] and got.dtype == torch.float32
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-9)
    if logits.numel() > method.LSE_CHUNK_ELEMENTS:
        assert torch.allclose(method._logsumexp_rows(logits), torch.logsumexp(logits, dim=-1), rtol=1e-6, atol=0)
