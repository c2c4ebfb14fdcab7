"""Where the engine's time goes: the self time of the torch operators of one traced prompt, by class.

``factrace bench tracing --ops`` traces each prompt once more under ``torch.profiler`` (after the timed run, so
that the timing is not the profiler's) and splits that run's wall time into: ``matmul`` (the linear layers'
products and the LM head: ``aten::mm`` / ``addmm``), ``attention`` (the attention kernel: sdpa, or eager's
batched products and softmax), ``copy`` (copies, concatenations, indexed writes, fills), ``other`` (every other
operator: norms, activations, rotary, residual adds, reductions) and ``outside`` (wall time in no operator:
Python and dispatch). Each operator's *self* time is counted once, so the classes add up to the wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

CLASSES = ("matmul", "attention", "copy", "other", "outside")
_MATMUL = {"aten::mm", "aten::addmm"}
_ATTENTION = {"aten::bmm", "aten::baddbmm", "aten::_softmax", "aten::softmax"}
_COPY = {"aten::copy_", "aten::cat", "aten::index_put_", "aten::_index_put_impl_", "aten::index", "aten::clone",
         "aten::fill_", "aten::zero_", "aten::index_select", "aten::gather"}

T = TypeVar("T")


def op_class(name: str) -> str:
    """The class of one profiler event name (see the module docstring)."""
    if name in _MATMUL:
        return "matmul"
    if name in _ATTENTION or name.startswith("aten::_scaled_dot_product") or name == "aten::scaled_dot_product_attention":
        return "attention"
    if name in _COPY:
        return "copy"
    return "other"


def by_class(events: Iterable[tuple[str, float]], wall_s: float) -> dict[str, float]:
    """Seconds per class from ``(operator name, self seconds)`` pairs of one run of ``wall_s`` seconds; ``outside``
    is the wall time in no operator (never negative: a profiler that over-counts shows 0)."""
    out = dict.fromkeys(CLASSES, 0.0)
    for name, self_s in events:
        out[op_class(name)] += self_s
    out["outside"] = max(0.0, wall_s - sum(out[c] for c in CLASSES if c != "outside"))
    return out


def profile_ops(run: Callable[[], T]) -> tuple[T, dict[str, float]]:
    """``run()`` under ``torch.profiler`` (CPU operators: the benchmark runs on the CPU): its result and seconds
    per class."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        result = run()
        wall = time.perf_counter() - t0
    events = [(e.key, e.self_cpu_time_total / 1e6) for e in prof.key_averages()]
    return result, by_class(events, wall)
