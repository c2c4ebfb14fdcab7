"""Where the engine's time goes (planning.op_time): operator classes, their sum, and `factrace bench tracing --ops`."""

from __future__ import annotations

import json

import pytest
import torch
from factrace.planning import bench_tracing as bench
from factrace.planning.op_time import CLASSES, by_class, op_class, profile_ops
from transformers import AutoModelForCausalLM, LlamaConfig


@pytest.mark.parametrize("name, cls", [
    ("aten::mm", "matmul"), ("aten::addmm", "matmul"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"), ("aten::bmm", "attention"),
    ("aten::_softmax", "attention"), ("aten::copy_", "copy"), ("aten::cat", "copy"),
    ("aten::_index_put_impl_", "copy"), ("aten::mul", "other"), ("aten::silu", "other"), ("aten::pow", "other"),
])
def test_each_operator_has_its_class(name, cls):
    assert op_class(name) == cls


def test_classes_add_up_to_the_wall_time_with_the_rest_outside_the_operators():
    events = [("aten::mm", 1.0), ("aten::addmm", 0.5), ("aten::_scaled_dot_product_flash_attention_for_cpu", 0.25),
              ("aten::copy_", 0.125), ("aten::mul", 0.0625)]
    got = by_class(events, wall_s=2.5)
    assert got == {"matmul": 1.5, "attention": 0.25, "copy": 0.125, "other": 0.0625, "outside": 0.5625}
    assert sum(got.values()) == pytest.approx(2.5)
    assert by_class(events, wall_s=1.0)["outside"] == 0.0  # a profiler that over-counts shows no negative time


def test_profile_ops_returns_the_result_and_times_the_matmul():
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    out, ops = profile_ops(lambda: (a @ b).relu())
    assert torch.equal(out, (a @ b).relu())
    assert set(ops) == set(CLASSES) and ops["matmul"] > 0 and ops["other"] > 0


def test_bench_tracing_ops_reports_the_engine_time_by_class(tmp_path, capsys):
    cfg = LlamaConfig(vocab_size=160, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "tiny")
    res = bench.main([str(tmp_path / "tiny"), "--quick", "--ops", "--threads", "1", "--dtypes", "float32",
                      "--prompts", "text", "--window", "2"])
    ops = res["engine_ops_s"]["float32"]["text"]
    assert set(ops) == set(CLASSES) and ops["matmul"] > 0
    over = res["engine_ops_over_floor"]["float32"]["text"]
    assert over["matmul"] == pytest.approx(ops["matmul"] / res["floor_s"]["float32"]["text"])
    from factrace.planning.cost import estimate_cost, model_dims

    n, (start, end) = bench.PROMPTS["text"]
    cost = estimate_cost(n_tokens=n, corrupt_start=start, corrupt_end=end, samples=4, window=2,
                         method="engine", layers=res["engine_layers"], **model_dims(cfg))
    assert res["engine_matmul_gflops"]["float32"]["text"] == pytest.approx(
        (cost["flops"] - cost["attention_flops"]) / ops["matmul"] / 1e9)
    printed = capsys.readouterr().out
    assert "engine time by operator class" in printed
    assert json.loads(printed.strip().splitlines()[-1])["engine_ops_s"] == res["engine_ops_s"]
