"""Command of the filter stage: ``filter`` (Known-t2t / Known-s2t: the facts a model answers right)."""

from __future__ import annotations

import argparse
import logging

from factrace.models.commands import model_args

log = logging.getLogger(__name__)


def cmd_filter(args: argparse.Namespace) -> None:
    from factrace.core import io
    from factrace.core.provenance import stage_provenance
    from factrace.filtering.modality import filter_modality
    from factrace.models.commands import load_from_args

    prompts = io.read_table(args.prompts, "prompts")
    loaded = load_from_args(args)
    asr = io.read_table(args.asr, "asr") if args.asr else None
    df = filter_modality(loaded, prompts, args.model, args.modality, args.max_new_tokens,
                         speech_tokens=args.speech_tokens, token_map=args.token_map, asr=asr)
    params = {"max_new_tokens": args.max_new_tokens, "modality": args.modality}
    prov = stage_provenance("filter", params, model_id=args.model, weights_sha256=loaded.weights_sha256)
    io.write_table(df, args.out, "filter", prov)
    log.info("%s %s shard: kept %d of %d", args.model, args.modality, int(df["kept"].sum()), len(df))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("filter", help="greedy generation and attribute matching (Known-t2t / Known-s2t)")
    model_args(s)
    s.add_argument("--modality", required=True, choices=["t2t", "s2t"], help="text prompts (t2t) or speech prompts (s2t)")
    s.add_argument("--prompts", required=True, help="the shard's `prompts` parquet")
    s.add_argument("--max-new-tokens", type=int, required=True, help="filter.max_new_tokens")
    s.add_argument("--speech-tokens", default=None, help="s2t: the shard's speech tokens")
    s.add_argument("--token-map", default=None, help="s2t: the shard's token map")
    s.add_argument("--asr", default=None, help="ASR check table: S->T facts it dropped are not kept")
    s.add_argument("--out", required=True, help="the `filter` parquet to write")
    s.set_defaults(func=cmd_filter)
