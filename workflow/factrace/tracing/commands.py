"""Commands of the tracing stage: ``noise-scale`` and ``trace`` (one job: every kind of one shard)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from factrace.core.noise_rule import add_noise_rule_args
from factrace.models.commands import load_from_args, model_args

log = logging.getLogger(__name__)


def cmd_noise_scale(args: argparse.Namespace) -> None:
    from factrace.core import io
    from factrace.core.noise_rule import NoiseRule
    from factrace.facts.subject import SubjectNotFoundError
    from factrace.speechlm.inputs import trace_inputs
    from factrace.tracing.job import traced_facts
    from factrace.tracing.scale import noise_json

    prompts = io.read_tables(args.prompts, "prompts")
    filters = [io.read_table(p, "filter") for p in args.filters]
    rule = NoiseRule.from_args(args)
    loaded = load_from_args(args)
    rows, kept = traced_facts(prompts, filters, args.max_facts)
    try:
        traced = trace_inputs(loaded, args.modality, rows, kept, speech_tokens=args.speech_tokens,
                              token_map=args.token_map, subject_margin=args.subject_margin)
    except SubjectNotFoundError as err:
        raise SystemExit(f"{args.prompts}: {err}") from err
    what = f"{args.model}/{args.modality}"
    res = noise_json(loaded, args.modality, prompts, traced, rule, samples=args.samples, seed=args.seed,
                     speech_tokens=args.speech_tokens, token_map=args.token_map, subject_margin=args.subject_margin,
                     what=what)
    res.update(model=args.model, modality=args.modality, weights_sha256=loaded.weights_sha256,
               max_facts_per_shard=args.max_facts)
    if args.modality == "s2t":
        res["subject_margin"] = args.subject_margin
    io.write_json(res, args.out)
    log.info("noise for %s: multiplier %g (median p_corrupted / p_clean %s over %d traced facts%s), scale %.4f "
             "(std %.4f over %d tokens)", what, res["multiplier"], res["median_ratio"], res["n_traced_facts"],
             "" if res["reached"] else ", target NOT reached", res["scale"], res["std"], res["n_tokens"])


def layer_range(model: str, n_layers: int, lo: int | None, hi: int | None) -> tuple[int, int]:
    """The centre layers ``[lo, hi)`` a job traces (default: all ``n_layers``); beyond the model is an error."""
    lo, hi = lo or 0, n_layers if hi is None else hi
    if hi > n_layers:
        raise SystemExit(f"model {model!r} has {n_layers} layers but the job traces layers up to {hi}; set "
                         f"`models.{model}.n_layers: {n_layers}` in the config")
    return lo, hi


def cmd_trace(args: argparse.Namespace) -> None:
    from factrace.core import io
    from factrace.core.provenance import stage_provenance
    from factrace.facts.subject import SubjectNotFoundError
    from factrace.speechlm.inputs import trace_inputs
    from factrace.tracing.job import inputs_digest, kind_jobs, parse_kind_settings, trace_kinds, traced_facts
    from factrace.tracing.stage import check_layer_count

    prompts = io.read_table(args.prompts, "prompts")
    filt = io.read_table(args.filter, "filter")
    noise = json.loads(Path(args.noise).read_text())
    loaded = load_from_args(args)
    n_layers = loaded.model.config.num_hidden_layers
    check_layer_count(args.model, json.loads(args.model_spec).get("n_layers"), n_layers)
    layers = layer_range(args.model, n_layers, args.layer_lo, args.layer_hi)
    jobs = kind_jobs(parse_kind_settings(args.kind_settings), args.out, layers=layers, engine=args.engine,
                     max_rows=args.max_rows)
    rows, kept = traced_facts(prompts, [filt], args.max_facts)
    n_kept = int(filt["kept"].sum())
    if len(rows) < n_kept:
        log.info("tracing the first %d of %d kept facts (max_facts_per_shard)", len(rows), n_kept)
    try:
        inputs = trace_inputs(loaded, args.modality, rows, kept, speech_tokens=args.speech_tokens,
                              token_map=args.token_map, subject_margin=args.subject_margin)
    except SubjectNotFoundError as err:
        raise SystemExit(f"{args.prompts}: {err}") from err
    corruption = {"subject_margin": args.subject_margin} if args.modality == "s2t" else {}
    labels = trace_labels(rows, kept)
    # the noise JSON counts through its scale alone (in every kind's key): a noise job rerun because another shard's
    # filter changed, which chose the same multiplier, leaves this shard's tables as they are
    sets = trace_fact_sets(loaded.spec.path, args.modality, [int(k) for k in rows["known_id"]])
    key = inputs_digest([args.prompts, args.filter, args.speech_tokens, args.token_map])
    trace_kinds(loaded.model, inputs, jobs, model=args.model, modality=args.modality, noise_scale=noise["scale"],
                inputs_key=key, weights=loaded.weights_sha256, corruption=corruption, labels=labels, fact_sets=sets,
                provenance=lambda st: stage_provenance(
                    "trace", {**st.as_dict(), "noise_scale": noise["scale"], "modality": args.modality, **corruption},
                    seed=st.seed, model_id=args.model, weights_sha256=loaded.weights_sha256))


def trace_fact_sets(model_dir: str, modality: str, known_ids: list[int]) -> dict[int, str]:
    """known_id -> ``fact_set`` of the facts traced: in S->T, the set the speech LM's checkpoint records
    (:func:`factrace.speechlm.fact_sets.fact_sets`: ``heard`` / ``text_only``); otherwise, or when the checkpoint
    records none, ``all``. A traced fact that a checkpoint with sets does not record stops the job: the model was
    built on other facts."""
    from factrace.speechlm.fact_sets import ALL, COLUMN, FACTS_FILE, fact_sets

    sets = fact_sets(model_dir) if modality == "s2t" else {}
    if not sets:
        return dict.fromkeys(known_ids, ALL)
    missing = [k for k in known_ids if k not in sets]
    if missing:
        raise SystemExit(f"{Path(model_dir) / FACTS_FILE}: traced fact(s) {missing[:5]} have no {COLUMN} heard or "
                         "text_only: the speech LM was built on other facts; rebuild it")
    counts = {s: sum(sets[k] == s for k in known_ids) for s in sorted(set(sets.values()))}
    log.info("fact sets of the %d facts traced (%s): %s", len(known_ids), Path(model_dir) / FACTS_FILE, counts)
    return {k: sets[k] for k in known_ids}


def trace_labels(rows, kept) -> dict[int, tuple[str, str]]:
    """known_id -> (prompt text, decoded target token): the trace table's ``prompt`` and ``target`` columns."""
    from factrace.core.tokens import token_text

    target = kept["target_token"] if "target_token" in kept.columns else {}
    return {int(r.known_id): (str(r.prompt), token_text(str(target.get(r.known_id, ""))))
            for r in rows.itertuples(index=False)}


def speech_args(s: argparse.ArgumentParser, nargs: str | None = None) -> None:
    """The S->T inputs of a command: the speech tokens, the token map and the subject margin."""
    s.add_argument("--speech-tokens", nargs=nargs, default=None, help="s2t: speech-token tables")
    s.add_argument("--token-map", nargs=nargs, default=None, help="s2t: token-map tables")
    s.add_argument("--subject-margin", type=int, default=None,
                   help="s2t: tracing.subject_margin_s2t (speech tokens added on each side of the subject)")


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("noise-scale", help="noise scale = multiplier x std of subject input embeddings, the "
                                           "multiplier computed by the noise rule on the traced facts")
    model_args(s)
    s.add_argument("--modality", required=True, choices=["t2t", "s2t"], help="text prompts (t2t) or speech prompts (s2t)")
    s.add_argument("--prompts", nargs="+", required=True, help="`prompts` parquets (the subjects measured)")
    s.add_argument("--filters", nargs="+", required=True,
                   help="the model and modality's `filter` parquets, one per shard: the multiplier is measured on the "
                        "facts they keep")
    speech_args(s, nargs="*")
    add_noise_rule_args(s)
    s.add_argument("--samples", type=int, required=True, help="tracing.samples: noise samples per fact")
    s.add_argument("--seed", type=int, required=True, help="seed (the per-fact noise seed, as the traces)")
    s.add_argument("--max-facts", type=int, default=None,
                   help="models.<model>.max_facts_per_shard or tracing.max_facts_per_shard (none: every kept fact)")
    s.add_argument("--out", required=True, help="the noise-scale JSON to write")
    s.set_defaults(func=cmd_noise_scale)

    s = sub.add_parser("trace", help="causal tracing of one shard: one table per kind, the model loaded once")
    model_args(s)
    s.add_argument("--modality", required=True, choices=["t2t", "s2t"], help="text prompts (t2t) or speech prompts (s2t)")
    s.add_argument("--kind-settings", required=True,
                   help='JSON [[kind, {"samples": n, "seed": n, "window": n}], ...], one per --out')
    s.add_argument("--layer-lo", type=int, default=None, help="first centre layer (none: 0)")
    s.add_argument("--layer-hi", type=int, default=None, help="end of the centre layers (none: all)")
    s.add_argument("--prompts", required=True, help="the shard's `prompts` parquet")
    s.add_argument("--filter", required=True, help="the shard's `filter` parquet: only kept facts are traced")
    s.add_argument("--noise", required=True, help="the noise-scale JSON (noise-scale)")
    speech_args(s)
    s.add_argument("--engine", required=True, choices=["fast", "reference"], help="tracing.engine")
    s.add_argument("--max-rows", type=int, required=True, help="tracing.max_rows")
    s.add_argument("--max-facts", type=int, default=None, help="models.<model>.max_facts_per_shard or tracing.max_facts_per_shard (none: every fact)")
    s.add_argument("--out", nargs="+", required=True, help="one trace table per kind, in the kinds' order")
    s.set_defaults(func=cmd_trace)
