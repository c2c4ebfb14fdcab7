"""The cost model counts exactly the matmul FLOPs the engine and the reference perform."""

from __future__ import annotations

import pytest
import torch
from factrace.planning import bench_tracing as bench
from factrace.planning.cost import estimate_cost, model_dims
from factrace.tracing.engine import trace_prompt_fast
from factrace.tracing.patching import trace_prompt
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig

CONFIGS = {
    "llama": LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2),
    "gpt2": GPT2Config(vocab_size=50, n_embd=32, n_layer=3, n_head=4, n_positions=32),
    "gpt_neox": GPTNeoXConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                              num_attention_heads=4),
}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _counted(fn, *args, **kw) -> tuple[int, int]:
    """Total FLOPs of the call and, of them, the batched products' (eager attention: QK^T and PV)."""
    with FlopCounterMode(display=False) as fc:
        fn(*args, **kw)
    return fc.get_total_flops(), int(fc.get_flop_counts()["Global"].get(torch.ops.aten.bmm, 0))


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("method", ["engine", "reference"])
def test_cost_model_counts_the_matmuls(name, method):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIGS[name], attn_implementation="eager").eval()
    n, corrupt, S, window, kinds, layers = 7, (2, 4), 2, 3, ("hidden", "mlp", "attn"), [0, 2]
    ids = torch.randint(0, 50, (1, n))
    noise = torch.randn(S, 2, 32)
    fn = trace_prompt_fast if method == "engine" else trace_prompt
    flops, attention = _counted(fn, model, ids, corrupt, 3, noise, kinds=kinds, window=window, layers=layers,
                                max_rows=8)
    est = estimate_cost(n_tokens=n, corrupt_start=corrupt[0], corrupt_end=corrupt[1], samples=S, kinds=kinds,
                        window=window, method=method, layers=layers, **model_dims(model.config))
    assert est["flops"] == flops
    assert est["attention_flops"] == attention > 0
    assert est["cells"] == len(kinds) * len(layers) * n


def test_engine_costs_less_and_no_corruption_costs_only_the_recording_pass():
    dims = {"n_layers": 30, "hidden": 576, "intermediate": 1536, "vocab": 49152, "q_dim": 576, "kv_dim": 192}
    e = estimate_cost(n_tokens=48, corrupt_start=16, samples=10, window=10, method="engine", **dims)
    r = estimate_cost(n_tokens=48, corrupt_start=16, samples=10, window=10, method="reference", **dims)
    assert e["cells"] == r["cells"] == 3 * 30 * 48
    assert e["computed_cells"] == 3 * 30 * 32 and r["computed_cells"] == r["cells"]
    assert r["flops"] / e["flops"] > 8
    assert e["forward_token_equivalents"] < r["forward_token_equivalents"]
    none = estimate_cost(n_tokens=48, corrupt_start=16, corrupt_end=16, samples=10, window=10, method="engine", **dims)
    assert none["computed_cells"] == 0 and none["forward_token_equivalents"] == 11 * 48
    with pytest.raises(ValueError):
        estimate_cost(n_tokens=4, corrupt_start=1, samples=1, window=10, method="fast", **dims)


def test_bench_floor_is_the_cost_model_over_the_measured_throughput(monkeypatch):
    """The bench's floor_s is estimate_cost(method='engine') / measured FLOP/s, for the engine's cells."""
    dims = model_dims(CONFIGS["llama"])
    n, (start, end) = bench.PROMPTS["speech"]
    floor = bench.floor_seconds(dims, n, start, end, samples=10, kinds=("hidden", "mlp", "attn"), window=10,
                                layers=None, flops_per_s=1e9)
    est = estimate_cost(n_tokens=n, corrupt_start=start, corrupt_end=end, samples=10, window=10,
                        method="engine", **dims)
    assert floor == pytest.approx(est["flops"] / 1e9)
    assert bench.matmul_flops("float32", n=64, repeats=2) > 0


def test_bench_block_rate_is_the_blocks_flops_over_their_time(monkeypatch):
    """block_matmul_flops: the FLOPs of one block's linear layers (q, k, v, o, the MLP's 3 or 2 matrices) at the
    model's shapes over their summed times (a fake clock: every product takes 1 s)."""
    clock = iter(range(10_000))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(clock)))
    for family, n_matrices in (("llama", 7), ("gpt2", 6)):
        dims = model_dims(CONFIGS[family])
        d, i, q, kv = dims["hidden"], dims["intermediate"], dims["q_dim"], dims["kv_dim"]
        mlp = 2 * 8 * d * i * (dims["mlp_matrices"] - 1) + 2 * 8 * i * d
        flops = 2 * 8 * (d * q + 2 * d * kv + q * d) + mlp
        assert bench.block_matmul_flops(dims, "float32", rows=8, repeats=1) == pytest.approx(flops / n_matrices)
