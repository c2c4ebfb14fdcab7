"""GPU-hours of a configured run, from the cost model (``tracing.cost.estimate_cost``), before submitting it.

Prompt lengths come from the facts file when it exists, else from Known-1000 averages. Assumptions, stated once:
text prompts are ``1 + 1.3 x words`` tokens (BOS + Llama-2 SentencePiece), the subject starts at 35% of the
prompt and covers 25% of it; speech prompts last ``characters / 14`` seconds (TTS speaking rate), give 25 units
a second, of which 75% survive SpiritLM's deduplication, plus 3 marker tokens; the filter keeps 62% of the facts
(754 of Known-1000's 1,209 in the paper's Figure 2). Device throughput: dense bf16 peak x ``utilisation``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factrace.planning.cost import estimate_cost
from factrace.tracing.method import model_window

DEVICE_TFLOPS = {"A40": 149.7, "A100": 312.0, "H100": 989.0}  # dense bf16 tensor-core peak
KEPT_FRACTION = 0.62
KNOWN_1000 = {"n_facts": 1209, "words": 9.5, "chars": 48.0}


@dataclass(frozen=True)
class PromptShape:
    n_tokens: int
    corrupt_start: int
    corrupt_end: int


def prompt_shape(words: float, chars: float, modality: str) -> PromptShape:
    if modality == "t2t":
        n = max(3, round(1 + 1.3 * words))
    else:
        n = max(5, round(chars / 14.0 * 25 * 0.75) + 3)
    start = max(1, round(0.35 * n))
    return PromptShape(n, start, min(n - 1, start + max(1, round(0.25 * n))))


def facts_profile(config: dict[str, Any]) -> dict[str, float]:
    path = Path(config["facts"]["path"])
    if path.is_file():
        facts = json.loads(path.read_text())
        limit = config["facts"].get("limit")
        facts = facts[:limit] if limit else facts
        return {
            "n_facts": len(facts),
            "words": sum(len(f["prompt"].split()) for f in facts) / max(1, len(facts)),
            "chars": sum(len(f["prompt"]) for f in facts) / max(1, len(facts)),
        }
    return dict(KNOWN_1000)


def _dims(m: dict[str, Any]) -> dict[str, int]:
    missing = [k for k in ("n_layers", "hidden", "intermediate", "vocab") if k not in m]
    if missing:
        raise ValueError(f"the cost model needs models.<name>.{', '.join(missing)} in the config")
    return {"n_layers": m["n_layers"], "hidden": m["hidden"], "intermediate": m["intermediate"], "vocab": m["vocab"]}


def per_prompt_cost(config: dict[str, Any], model: str, modality: str, kinds, method: str,
                    layers: range | None = None) -> dict[str, float]:
    prof = facts_profile(config)
    shape = prompt_shape(prof["words"], prof["chars"], modality)
    tr = config["tracing"]
    return estimate_cost(
        **_dims(config["models"][model]), n_tokens=shape.n_tokens, corrupt_start=shape.corrupt_start,
        corrupt_end=shape.corrupt_end, samples=tr["samples"], kinds=tuple(kinds),
        window=model_window(config, model), method=method, layers=None if layers is None else list(layers),
    )


def throughput(config: dict[str, Any], device: str) -> float:
    util = config["resources"]["trace"]["utilisation"]
    return DEVICE_TFLOPS[device] * 1e12 * util


def estimate_table(config: dict[str, Any], devices=("A40", "A100")) -> list[dict[str, Any]]:
    prof = facts_profile(config)
    kinds = config["tracing"]["kinds"]
    n_traced = prof["n_facts"] * KEPT_FRACTION
    rows = []
    for name, m in config["models"].items():
        for modality in m["modalities"]:
            shape = prompt_shape(prof["words"], prof["chars"], modality)
            for method in ("engine", "reference"):
                c = per_prompt_cost(config, name, modality, kinds, method)
                row = {
                    "model": name, "modality": modality, "method": method, "prompt_tokens": shape.n_tokens,
                    "facts_traced": round(n_traced), "cells": int(c["cells"] * n_traced),
                    "forward_token_equivalents": c["forward_token_equivalents"] * n_traced,
                    "pflops": c["flops"] * n_traced / 1e15,
                }
                for dev in devices:
                    row[f"gpu_hours_{dev}"] = c["flops"] * n_traced / throughput(config, dev) / 3600
                rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no models)"
    cols = list(rows[0])
    fmt = {c: (lambda v: f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))
           for c in cols}
    cells = [[fmt[c](r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def totals(rows: list[dict[str, Any]], devices=("A40", "A100")) -> dict[str, float]:
    out = {}
    for method in ("engine", "reference"):
        for dev in devices:
            out[f"{method}_gpu_hours_{dev}"] = math.fsum(r[f"gpu_hours_{dev}"] for r in rows if r["method"] == method)
    return out
