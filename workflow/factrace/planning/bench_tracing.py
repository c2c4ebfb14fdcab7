"""Benchmark: the fast engine against the hook-based reference on the offline SmolLM2-135M, on this CPU.

Usage: ``python -m factrace.planning.bench_tracing [MODEL_DIR] [--quick] [--reference-layers N] ...``

Two prompts: a text-length one (12 tokens, subject at 2..5) and a speech-length one (48 tokens, corrupted
range 16..32 in the middle), ``--samples`` noise samples, kinds hidden/mlp/attn with window 10. The engine
and the reference each run in a subprocess (so that their peak RSS is measured separately, model included).

The reference costs a full forward per cell whatever the cell's layer and position, so it is run on
``--reference-layers`` evenly spaced centre layers and its time is extrapolated per cell to all layers
(the table says so); the engine runs all layers (or ``--engine-layers``) and its time is measured. The
engine and reference results are compared on the layers both ran (``max_abs_diff``).

The engine runs once per ``--dtypes`` entry (float32 and bfloat16 by default: the model loaded in that dtype,
the score read in float32 either way); the reference runs in float32. ``floor_s`` is the FLOPs of the minimal
recomputation (``cost.estimate_cost(method="engine")``) divided by the FLOP/s of a large matmul in the same dtype
measured here; beside it, the rate of one block's linear layers at the model's own shapes
(``block_matmul_gflops``), which shows how much of the gap to the floor the matmuls' shapes explain. A bf16
trace is compared with the float32 one cell by cell (``tracing.precision.compare``: the
largest AIE and p_clean differences, and whether each kind's peak is the same cell). ``--ops`` traces each
prompt once more under ``torch.profiler`` and splits the engine's time by operator class (``op_time``), each
class also as a multiple of ``floor_s``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROMPTS = {
    # name: (n_tokens, corrupt range); the text prompt is tokenized text when it has 12 tokens
    "text": (12, (2, 5)),
    "speech": (48, (16, 32)),
}
TEXT = "The Eiffel Tower is located in the city of Paris, which"


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _matmul_seconds(m: int, k: int, n: int, dtype: str, repeats: int) -> float:
    """Best of ``repeats`` timings of one (m x k) @ (k x n) product in ``dtype`` (after one untimed warm-up)."""
    import torch

    a, b = torch.randn(m, k).to(getattr(torch, dtype)), torch.randn(k, n).to(getattr(torch, dtype))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_flops(dtype: str, n: int = 2048, repeats: int = 8) -> float:
    """Matmul throughput of this machine in ``dtype`` (FLOP/s, best of ``repeats``)."""
    return 2 * n**3 / _matmul_seconds(n, n, n, dtype, repeats)


def block_matmul_flops(dims: dict, dtype: str, rows: int = 1024, repeats: int = 5) -> float:
    """Throughput (FLOP/s) of one decoder block's linear layers at ``rows`` input rows in ``dtype``: the model's own
    shapes (q, k, v, o projections, the MLP's matrices), FLOP-weighted, each the best of ``repeats``. Set against
    :func:`matmul_flops`, it says whether the engine's matmuls are slower than a large one because of their shapes."""
    d, i = dims["hidden"], dims["intermediate"]
    shapes = [(d, dims["q_dim"]), (d, dims["kv_dim"]), (d, dims["kv_dim"]), (dims["q_dim"], d)]
    shapes += [(d, i)] * (dims["mlp_matrices"] - 1) + [(i, d)]
    flops = sum(2 * rows * k * n for k, n in shapes)
    return flops / sum(_matmul_seconds(rows, k, n, dtype, repeats) for k, n in shapes)


def floor_seconds(dims: dict, n_tokens: int, start: int, end: int, samples: int, kinds, window: int,
                  layers, flops_per_s: float) -> float:
    """Seconds the minimal recomputation needs at ``flops_per_s`` (the cost model's engine FLOPs)."""
    from factrace.planning.cost import estimate_cost

    cost = estimate_cost(n_tokens=n_tokens, corrupt_start=start, corrupt_end=end, samples=samples,
                         kinds=tuple(kinds), window=window, method="engine", layers=layers, **dims)
    return cost["flops"] / flops_per_s


def _prompt(model, tok, name: str, samples: int, seed: int):
    import torch

    from factrace.tracing.method import embedding_std, make_noise, noise_scale_for

    n, (start, end) = PROMPTS[name]
    ids = None
    if name == "text" and tok is not None:
        ids = tok(TEXT, return_tensors="pt", add_special_tokens=False).input_ids[:, :n]
        if ids.shape[1] != n:
            ids = None
    if ids is None:  # a speech-length stand-in: deterministic token ids
        g = torch.Generator().manual_seed(seed + n)
        ids = torch.randint(100, model.config.vocab_size, (1, n), generator=g)
    with torch.no_grad():
        emb = model.get_input_embeddings()(ids[0, start:end])
        target = int(model(input_ids=ids).logits[0, -1].argmax())
    noise = make_noise(samples, end - start, emb.shape[-1], noise_scale_for(embedding_std(emb), 3), seed)
    return ids, (start, end), target, noise


def _worker(args: argparse.Namespace) -> None:
    """Runs one method on the prompts; writes timings and results to ``args.out`` (npz + json)."""
    _threads(args.threads)
    import torch
    from transformers import AutoModelForCausalLM

    from factrace.planning.op_time import profile_ops
    from factrace.tracing.stage import tracer

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).eval()
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(args.model)
    except Exception:  # noqa: BLE001 - a model dir without a tokenizer still benchmarks
        tok = None
    # each method as a trace job runs it (stage.tracer): the engine bound to the model once, before any timing
    fn = tracer("fast" if args.worker == "engine" else "reference", model)
    kinds = tuple(args.kinds.split(","))
    out = {"method": args.worker, "dtype": args.dtype}
    arrays = {}
    # warm-up (first-call allocations and kernel selection), the same for both methods, not timed
    ids, corrupt, target, noise = _prompt(model, tok, "text", 2, args.seed)
    fn(ids, corrupt, target, noise, kinds=kinds, window=args.window, layers=[0], max_rows=args.max_rows)
    runs = {}  # name: the traced prompt's call, timed once here and profiled once below
    for name in args.prompts.split(","):
        ids, corrupt, target, noise = _prompt(model, tok, name, args.samples, args.seed)
        layers = json.loads(getattr(args, f"{args.worker}_layer_list"))
        runs[name] = functools.partial(fn, ids, corrupt, target, noise, kinds=kinds, window=args.window,
                                       layers=layers, max_rows=args.max_rows)
        t0 = time.perf_counter()
        res = runs[name]()
        dt = time.perf_counter() - t0
        out[name] = {"seconds": dt, "layers": layers, "n_tokens": int(ids.shape[1]), "corrupt": list(corrupt),
                         "p_clean": res.p_clean, "p_corrupted": res.p_corrupted}
        for k in kinds:
            arrays[f"{name}/{k}"] = res.restored[k]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the profiler's memory
    if args.ops:  # each prompt once more under the profiler, after the timed runs (op_time)
        for name, run in runs.items():
            out[name]["ops"] = profile_ops(run)[1]
    np.savez(args.out + ".npz", **arrays)
    Path(args.out + ".json").write_text(json.dumps(out))


def _spaced(n_layers: int, count: int) -> list[int]:
    if count >= n_layers:
        return list(range(n_layers))
    return sorted({round(i * (n_layers - 1) / max(1, count - 1)) for i in range(count)}) if count > 1 else [
        n_layers // 2]


def _run_worker(method: str, ns: argparse.Namespace, tmp: str, dtype: str) -> tuple[dict, dict]:
    out = os.path.join(tmp, f"{method}-{dtype}")
    cmd = [sys.executable, "-m", "factrace.planning.bench_tracing", ns.model, "--worker", method, "--out", out,
           "--dtype", dtype,
           "--samples", str(ns.samples), "--window", str(ns.window), "--kinds", ns.kinds,
           "--prompts", ns.prompts, "--threads", str(ns.threads), "--seed", str(ns.seed),
           "--max-rows", str(ns.max_rows), *(["--ops"] if ns.ops and method == "engine" else []),
           "--engine-layer-list", ns.engine_layer_list, "--reference-layer-list", ns.reference_layer_list]
    subprocess.run(cmd, check=True)
    info = json.loads(Path(out + ".json").read_text())
    with np.load(out + ".npz") as z:
        arrays = {k: z[k] for k in z.files}
    return info, arrays


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="factrace bench tracing", description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", default="results/models/converted/smollm2")
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--kinds", default="hidden,mlp,attn")
    p.add_argument("--prompts", default="text,speech")
    p.add_argument("--reference-layers", type=int, default=2,
                   help="evenly spaced centre layers the reference runs (time extrapolated per cell)")
    p.add_argument("--engine-layers", type=int, default=0, help="evenly spaced layers for the engine (0: all)")
    p.add_argument("--quick", action="store_true", help="engine on 6 layers, reference on 1, 4 samples")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-rows", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtypes", default="float32,bfloat16",
                   help="the engine's dtypes (the reference runs in float32; a bf16 trace is compared with float32)")
    p.add_argument("--ops", action="store_true",
                   help="trace each prompt once more under torch.profiler: the engine's time by operator class")
    p.add_argument("--worker", choices=["engine", "reference"], help=argparse.SUPPRESS)
    p.add_argument("--dtype", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--engine-layer-list", default="null", help=argparse.SUPPRESS)
    p.add_argument("--reference-layer-list", default="null", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.worker:
        _worker(ns)
        return {}
    if ns.quick:
        ns.engine_layers, ns.reference_layers, ns.samples = ns.engine_layers or 6, 1, min(ns.samples, 4)

    from transformers import AutoConfig

    from factrace.planning.cost import estimate_cost, model_dims
    from factrace.planning.op_time import CLASSES
    from factrace.tracing.precision import BF16_AIE_TOLERANCE, compare

    _threads(ns.threads)
    cfg = AutoConfig.from_pretrained(ns.model)
    dims = model_dims(cfg)
    L = dims["n_layers"]
    ref_layers = _spaced(L, ns.reference_layers)
    eng_layers = list(range(L)) if ns.engine_layers <= 0 else sorted(set(_spaced(L, ns.engine_layers))
                                                                      | set(ref_layers))
    ns.engine_layer_list, ns.reference_layer_list = json.dumps(eng_layers), json.dumps(ref_layers)
    dtypes = [d for d in ns.dtypes.split(",") if d]
    if "float32" not in dtypes:
        raise SystemExit("--dtypes must include float32 (the reference and the bf16 comparison need it)")
    flops_per_s = {d: matmul_flops(d) for d in dtypes}
    block_per_s = {d: block_matmul_flops(dims, d) for d in dtypes}  # the floor stays the large matmul's rate
    kinds = tuple(ns.kinds.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        eng = {d: _run_worker("engine", ns, tmp, d) for d in dtypes}
        ref, ref_arr = _run_worker("reference", ns, tmp, "float32")

    rows, summary, precision = [], {}, {}
    max_diff = 0.0
    eng32, eng32_arr = eng["float32"]
    idx = [eng_layers.index(x) for x in ref_layers]
    for name in ns.prompts.split(","):
        e, r = eng32[name], ref[name]
        n, (start, end) = e["n_tokens"], e["corrupt"]
        for k in kinds:
            max_diff = max(max_diff, float(np.abs(eng32_arr[f"{name}/{k}"][idx] - ref_arr[f"{name}/{k}"]).max()))
        max_diff = max(max_diff, abs(e["p_clean"] - r["p_clean"]), abs(e["p_corrupted"] - r["p_corrupted"]))
        common = dict(n_tokens=n, corrupt_start=start, corrupt_end=end, samples=ns.samples, kinds=kinds,
                      window=ns.window, **dims)
        cost_e = estimate_cost(method="engine", layers=eng_layers, **common)
        cost_r_meas = estimate_cost(method="reference", layers=ref_layers, **common)
        cost_r_same = estimate_cost(method="reference", layers=eng_layers, **common)
        # the reference's time per cell is the same for every cell: extrapolate to the engine's cells
        ref_s = r["seconds"] * cost_r_same["cells"] / cost_r_meas["cells"]
        for d in dtypes:
            ed = eng[d][0][name]
            floor_s = floor_seconds(dims, n, start, end, ns.samples, kinds, ns.window, eng_layers, flops_per_s[d])
            summary[d, name] = {"engine_s": ed["seconds"], "floor_s": floor_s, "speedup": ref_s / ed["seconds"],
                                "engine_gflops": cost_e["flops"] / ed["seconds"] / 1e9}
            if "ops" in ed:  # --ops: the profiled run's classes, against the floor; its matmuls' own rate
                summary[d, name].update(ops_s=ed["ops"], ops_over_floor={c: v / floor_s for c, v in ed["ops"].items()},
                                        matmul_gflops=(cost_e["flops"] - cost_e["attention_flops"])
                                        / ed["ops"]["matmul"] / 1e9)
            rows.append((name, d, n, f"{start}..{end}", len(eng_layers), len(ref_layers), ed["seconds"],
                         r["seconds"], ref_s, floor_s, ref_s / ed["seconds"], ed["seconds"] / floor_s))
            if d != "float32":
                precision[d, name] = compare(_result(eng32[name], eng32_arr, name, kinds, eng_layers),
                                             _result(ed, eng[d][1], name, kinds, eng_layers))
        summary["float32", name].update(reference_s=ref_s, reference_measured_s=r["seconds"],
                                        flop_ratio=cost_r_same["flops"] / cost_e["flops"],
                                        reference_gflops=cost_r_meas["flops"] / r["seconds"] / 1e9)

    print(f"model {ns.model}: {L} layers, hidden {dims['hidden']}; samples {ns.samples}, kinds {','.join(kinds)}, "
          f"window {ns.window}; {ns.threads} threads; matmul GFLOP/s "
          + ", ".join(f"{d} {f / 1e9:.1f}" for d, f in flops_per_s.items())
          + "; a block's linear layers at 1024 rows " + ", ".join(f"{d} {f / 1e9:.1f}" for d, f in block_per_s.items()))
    print(f"reference (float32) run on centre layers {ref_layers} only; its time is extrapolated per cell "
          f"(every cell is one full forward) to the engine's {len(eng_layers)} layers")
    hdr = ("prompt", "dtype", "tokens", "corrupt", "eng_L", "ref_L", "engine_s", "ref_meas_s", "ref_extrap_s",
           "floor_s", "speedup", "eng/floor")
    print("{:<7} {:<9} {:>6} {:>7} {:>5} {:>5} {:>9} {:>10} {:>12} {:>8} {:>8} {:>9}".format(*hdr))
    for row in rows:
        print("{:<7} {:<9} {:>6} {:>7} {:>5} {:>5} {:>9.2f} {:>10.2f} {:>12.1f} {:>8.2f} {:>8.1f} {:>9.2f}"
              .format(*row))
    for name in ns.prompts.split(","):
        s32 = summary["float32", name]
        print(f"{name}: FLOP ratio reference/engine {s32['flop_ratio']:.2f}; achieved GFLOP/s reference "
              f"{s32['reference_gflops']:.1f}, engine " + ", ".join(
                  f"{d} {summary[d, name]['engine_gflops']:.1f}" for d in dtypes))
    for (d, name), diff in precision.items():
        peaks = ", ".join(f"{k.kind} {'same' if k.same_peak else f'differs (gap {k.peak_gap:.4f})'}"
                          for k in diff.kinds)
        print(f"{name}: {d} vs float32: max |AIE diff| {diff.max_aie_diff:.4f} over one prompt's cells "
              f"(figure tolerance, on means over facts: {BF16_AIE_TOLERANCE}), |p_clean diff| "
              f"{diff.p_clean_diff:.4f}; peak cell: {peaks}")
    if ns.ops:
        print("engine time by operator class (one more run under torch.profiler), seconds and / floor_s; "
              "mm_GFLOP/s: the linear layers' and LM head's FLOPs over the matmul class's time")
        print("{:<7} {:<9} ".format("prompt", "dtype") + " ".join(f"{c:>16}" for c in CLASSES)
              + f" {'profiled_s':>10} {'mm_GFLOP/s':>10}")
        for d in dtypes:
            for name in ns.prompts.split(","):
                o = summary[d, name]
                print(f"{name:<7} {d:<9} " + " ".join(f"{o['ops_s'][c]:>8.2f} ({o['ops_over_floor'][c]:>4.2f}x)"
                                                      for c in CLASSES)
                      + f" {sum(o['ops_s'].values()):>10.2f} {o['matmul_gflops']:>10.1f}")
    print("peak RSS (MB, model included): " + ", ".join(f"engine {d} {eng[d][0]['peak_rss_mb']:.0f}" for d in dtypes)
          + f", reference {ref['peak_rss_mb']:.0f}; max |engine - reference| (float32) = {max_diff:.2e}")
    prompts = ns.prompts.split(",")
    result = {
        "speedup_text": summary.get(("float32", "text"), {}).get("speedup"),
        "speedup_speech": summary.get(("float32", "speech"), {}).get("speedup"),
        "max_abs_diff": max_diff,
        "engine_s": {d: {nm: summary[d, nm]["engine_s"] for nm in prompts} for d in dtypes},
        "reference_s": {nm: summary["float32", nm]["reference_s"] for nm in prompts},
        "reference_measured_s": {nm: summary["float32", nm]["reference_measured_s"] for nm in prompts},
        "reference_extrapolated": len(ref_layers) < len(eng_layers),
        "floor_s": {d: {nm: summary[d, nm]["floor_s"] for nm in prompts} for d in dtypes},
        "engine_over_floor": {d: {nm: summary[d, nm]["engine_s"] / summary[d, nm]["floor_s"] for nm in prompts}
                              for d in dtypes},
        "dtype_speedup": {d: {nm: summary["float32", nm]["engine_s"] / summary[d, nm]["engine_s"]
                              for nm in prompts} for d in dtypes if d != "float32"},
        "vs_float32": {d: {nm: precision[d, nm].as_dict() for nm in prompts} for d in dtypes if d != "float32"},
        "bf16_aie_tolerance": BF16_AIE_TOLERANCE,
        "peak_rss_mb": {**{f"engine_{d}": eng[d][0]["peak_rss_mb"] for d in dtypes}, "reference": ref["peak_rss_mb"]},
        "matmul_gflops": {d: f / 1e9 for d, f in flops_per_s.items()},
        "block_matmul_gflops": {d: f / 1e9 for d, f in block_per_s.items()},
        **({f"engine_{key}": {d: {nm: summary[d, nm][key] for nm in prompts} for d in dtypes}
            for key in ("ops_s", "ops_over_floor", "matmul_gflops")} if ns.ops else {}),
        "samples": ns.samples, "kinds": list(kinds), "window": ns.window, "engine_layers": eng_layers,
        "reference_layers": ref_layers, "threads": ns.threads,
    }
    print(json.dumps(result))
    return result


def _result(info: dict, arrays: dict, name: str, kinds, layers):
    """One prompt's trace as a worker left it (json + npz) in the form the comparison takes."""
    from factrace.tracing.method import TraceResult

    return TraceResult(info["p_clean"], info["p_corrupted"], {k: arrays[f"{name}/{k}"] for k in kinds},
                       {k: list(layers) for k in kinds})


if __name__ == "__main__":
    main()
