"""Subcommand ``modality-gap``: per-layer cosine / Euclidean gap between a fact's text and speech hidden states
(:mod:`factrace.gap.measure`). ``register(subparsers)`` adds it to the main CLI (:mod:`factrace.cli`)."""

from __future__ import annotations

import argparse

from factrace.models.commands import model_args


def _gap(a: argparse.Namespace) -> int:
    from factrace.core import io
    from factrace.core.provenance import Provenance, config_hash
    from factrace.gap.measure import modality_gap
    from factrace.models.commands import load_from_args

    loaded = load_from_args(a)
    prompts = io.read_tables(a.prompts, "prompts")
    known = None
    if a.filters:
        filt = io.read_tables(a.filters, "filter")
        kept = filt[filt["kept"]]
        mods = set(kept["modality"])
        # facts kept in every modality present in the filter tables
        sets = [set(kept.loc[kept["modality"] == m, "known_id"]) for m in mods]
        known = set.intersection(*sets) if sets else set()
    df = modality_gap(loaded, prompts, a.speech_tokens, a.token_map, a.model, known_ids=known)
    prov = Provenance(stage="modality_gap", config_hash=config_hash({"filters": bool(a.filters)}),
                      model_id=a.model, weights_sha256=loaded.weights_sha256)
    io.write_table(df, a.out, None, prov)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("modality-gap", help="per-layer cosine / Euclidean gap of text vs speech states")
    model_args(p)
    p.add_argument("--prompts", nargs="+", required=True, help="`prompts` parquets")
    p.add_argument("--speech-tokens", nargs="+", required=True, help="speech-tokens parquets")
    p.add_argument("--token-map", nargs="+", required=True, help="token-map parquets")
    p.add_argument("--filters", nargs="*", default=None, help="filter tables: only facts kept in every modality")
    p.add_argument("--out", required=True, help="the modality-gap parquet to write (per layer)")
    p.set_defaults(func=_gap)
