"""Slurm resources of the jobs that load a model, derived in one place from the model's size and dtype.

Every rule that loads a model (``MODEL_RULES``) asks this module, through the resource functions of
``workflow/rules/common.smk``, for its GPUs, host memory and runtime; ``factrace plan`` asks it for the same
estimates. Inputs are the model's config entry (``n_layers``, ``hidden``, ``intermediate``, ``vocab``, ``dtype``,
``device``) and the ``resources`` section of the config. Stated assumptions:

* weights: a Llama-style block (4 attention and 3 MLP matrices) plus untied embeddings and LM head; bytes per
  parameter from the dtype it runs in (``models.dtypes.runtime_dtype``: float16 runs in float32 on the CPU);
* host memory: the weights pass through host memory once while loading: 1.25 x weights + 3 GB (Python, torch,
  CUDA runtime, tables), rounded up to 1000 MB;
* loading: ``load_overhead_s`` (imports, CUDA context, tokenizer) + weights / ``load_gb_per_s``;
* tracing: the cost model's FLOPs (``tracing.estimate``) at ``gpu_tflops x utilisation``, with the model's mlp/attn
  window (``tracing.method.model_window``);
* noise scale: the noise rule's prompt forwards (:func:`noise_rule_forwards`), every multiplier counted;
* greedy generation (filter): batch 1, memory-bound: every new token reads the weights once at
  ``gpu_bandwidth_gb_per_s`` x 0.7, the prompt's prefill at the tracing throughput;
* requested runtime: ``margin`` x (loading + compute), at least ``min_runtime`` minutes, x the attempt number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from factrace.models.dtypes import DTYPE_BYTES, runtime_dtype

MODEL_RULES = ("filter", "noise_scale", "trace", "modality_gap")
GENERATION_BANDWIDTH_USE = 0.7


@dataclass(frozen=True)
class ResourceSettings:
    """The config's ``resources`` section (defaults in workflow/schemas/config.schema.yaml)."""

    margin: float
    min_runtime: int
    load_gb_per_s: float
    load_overhead_s: float
    gpu_bandwidth_gb_per_s: float
    gpu_tflops: float | None
    utilisation: float
    fallback_runtime: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ResourceSettings:
        """From a config validated against the schema (which fills in the defaults)."""
        res = config["resources"]
        trace = res["trace"]
        return cls(
            margin=float(res["margin"]),
            min_runtime=int(res["min_runtime"]),
            load_gb_per_s=float(res["load_gb_per_s"]),
            load_overhead_s=float(res["load_overhead_s"]),
            gpu_bandwidth_gb_per_s=float(res["gpu_bandwidth_gb_per_s"]),
            gpu_tflops=trace.get("gpu_tflops"),
            utilisation=float(trace["utilisation"]),
            fallback_runtime=int(trace["runtime"]),
        )


@dataclass(frozen=True)
class JobEstimate:
    """Seconds of one job: loading its model, then computing."""

    load_s: float
    compute_s: float

    @property
    def total_s(self) -> float:
        return self.load_s + self.compute_s

    @property
    def load_fraction(self) -> float:
        return self.load_s / self.total_s if self.total_s > 0 else 0.0


def n_params(m: dict[str, Any]) -> int:
    """Parameters of a Llama-style model from its config entry (embeddings and LM head counted apart)."""
    d, inter, n_layers, vocab = int(m["hidden"]), int(m["intermediate"]), int(m["n_layers"]), int(m["vocab"])
    block = 4 * d * d + 3 * d * inter + 2 * d
    return 2 * vocab * d + n_layers * block + d


def on_gpu(m: dict[str, Any]) -> bool:
    return str(m["device"]).startswith("cuda")


def weight_bytes(m: dict[str, Any]) -> int:
    return n_params(m) * DTYPE_BYTES[runtime_dtype(m["dtype"], "cuda" if on_gpu(m) else "cpu")]


def gpus(m: dict[str, Any]) -> int:
    """GPUs of a job that loads model ``m``: one when the model runs on CUDA."""
    return 1 if on_gpu(m) else 0


def mem_mb(m: dict[str, Any], attempt: int = 1) -> int:
    """Host memory (MB) of a job that loads model ``m``; a retry gets ``attempt`` times as much."""
    need = 1.25 * weight_bytes(m) + 3e9
    return math.ceil(need / 1e9) * 1000 * attempt


def load_seconds(m: dict[str, Any], s: ResourceSettings) -> float:
    return s.load_overhead_s + weight_bytes(m) / (s.load_gb_per_s * 1e9)


def _throughput(s: ResourceSettings) -> float:
    assert s.gpu_tflops
    return float(s.gpu_tflops) * 1e12 * s.utilisation


def _forward_flops(m: dict[str, Any], n_tokens: int) -> float:
    return 2.0 * n_params(m) * n_tokens


def max_facts_per_shard(config: dict[str, Any], model: str) -> int | None:
    """The model's cap on traced facts per shard: ``models.<model>.max_facts_per_shard`` when it gives one, else
    ``tracing.max_facts_per_shard`` (None: every kept fact). The rules' ``max_facts_per_shard`` is the same rule."""
    m = config["models"][model]
    return m["max_facts_per_shard"] if "max_facts_per_shard" in m else config["tracing"]["max_facts_per_shard"]


def trace_facts(config: dict[str, Any], model: str, n_facts: int) -> float:
    """Facts a trace job of ``model`` traces: the shard's facts that the filter keeps, at most its cap."""
    from factrace.planning.estimate import KEPT_FRACTION

    kept = n_facts * KEPT_FRACTION
    cap = max_facts_per_shard(config, model)
    return min(kept, cap) if cap else kept


def noise_rule_forwards(config: dict[str, Any], model: str, n_facts: int) -> float:
    """Prompt forwards of a noise_scale job over ``n_facts`` facts, at most: per traced fact (the facts the filter
    keeps, at most max_facts_per_shard of each shard) one clean run and ``tracing.samples`` noised runs for each
    multiplier the noise rule may try (factrace.core.noise_rule)."""
    from factrace.core.noise_rule import NoiseRule

    full, rest = divmod(n_facts, int(config["facts"]["shard_size"]))  # full shards, and the last one
    traced = full * trace_facts(config, model, int(config["facts"]["shard_size"]))
    traced += trace_facts(config, model, rest) if rest else 0.0
    tried = len(NoiseRule.from_config(config["tracing"]).candidates())
    return traced * (1 + int(config["tracing"]["samples"]) * tried)


def estimate(config: dict[str, Any], rule: str, model: str, modality: str | None, n_facts: int) -> JobEstimate | None:
    """Seconds of one job of ``rule`` (one of ``MODEL_RULES``) on ``n_facts`` facts; None without a device
    throughput (``resources.trace.gpu_tflops``), as for the offline CPU configs."""
    from factrace.planning.estimate import facts_profile, per_prompt_cost, prompt_shape

    s = ResourceSettings.from_config(config)
    if not s.gpu_tflops:
        return None
    m = config["models"][model]
    load = load_seconds(m, s)
    prof = facts_profile(config)
    if rule == "trace":
        kinds = config["tracing"]["kinds"]
        flops = per_prompt_cost(config, model, modality or "t2t", kinds, "engine")["flops"]
        return JobEstimate(load, flops * trace_facts(config, model, n_facts) / _throughput(s))
    if rule == "filter":
        n = prompt_shape(prof["words"], prof["chars"], modality or "t2t").n_tokens
        new = int(config["filter"]["max_new_tokens"])
        per_token = weight_bytes(m) / (s.gpu_bandwidth_gb_per_s * 1e9 * GENERATION_BANDWIDTH_USE)
        return JobEstimate(load, n_facts * (new * per_token + _forward_flops(m, n) / _throughput(s)))
    if rule == "noise_scale":  # the noise rule: p_clean, then each multiplier tried (at most all) on the traced facts
        return JobEstimate(load, noise_rule_forwards(config, model, n_facts)
                           * _forward_flops(m, prompt_shape(prof["words"], prof["chars"], modality or "t2t").n_tokens)
                           / _throughput(s))
    if rule == "modality_gap":  # one text and one speech forward per kept fact, every shard's (no trace cap)
        from factrace.planning.estimate import KEPT_FRACTION

        n = sum(prompt_shape(prof["words"], prof["chars"], mod).n_tokens for mod in ("t2t", "s2t"))
        return JobEstimate(load, n_facts * KEPT_FRACTION * _forward_flops(m, n) / _throughput(s))
    raise ValueError(f"rule {rule!r} loads no model; rules that do: {', '.join(MODEL_RULES)}")


def runtime_minutes(config: dict[str, Any], est: JobEstimate | None, attempt: int = 1) -> int:
    """Requested Slurm runtime: ``margin`` x the estimate, at least ``min_runtime``; ``resources.trace.runtime``
    when there is no estimate."""
    s = ResourceSettings.from_config(config)
    if est is None:
        return s.fallback_runtime * attempt
    return max(s.min_runtime, math.ceil(s.margin * est.total_s / 60.0)) * attempt
