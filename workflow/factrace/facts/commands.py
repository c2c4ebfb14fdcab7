"""Commands of the facts stage: ``download-facts``, ``validate-facts`` and ``shard`` (one shard's prompts table)."""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def cmd_download_facts(args: argparse.Namespace) -> None:
    from factrace.facts.download import download_facts

    download_facts(args.url, args.out, sha256=args.sha256)


def cmd_validate_facts(args: argparse.Namespace) -> None:
    """Print each skipped row as a WARNING and a summary; exit status 2 when a row is skipped, unless
    ``--allow-skipped`` (the workflow skips bad rows and records them in skipped_facts.parquet)."""
    from factrace.facts.known import load_facts_checked

    facts, skipped = load_facts_checked(args.facts)
    for s in skipped:
        kid = "?" if s.known_id is None else s.known_id
        print(f"WARNING: {s.file}: row {s.row} (known_id={kid}): skipped: {s.reason.partition('; ')[0]} "
              f"(fix: {s.fix})", file=sys.stderr)
    rows = len({s.row for s in skipped})
    print(f"{args.facts}: {len(facts)} facts valid, {rows} skipped")
    if skipped and not args.allow_skipped:
        raise SystemExit(2)


def cmd_shard(args: argparse.Namespace) -> None:
    from factrace.core import io
    from factrace.core.provenance import stage_provenance
    from factrace.facts.known import shard_frame

    df = shard_frame(args.facts, args.shard, args.shard_size, args.limit)
    params = {"shard_size": args.shard_size, "limit": args.limit}
    io.write_table(df, args.out, "prompts", stage_provenance("shard", params))
    log.info("shard %s: %d facts", args.shard, len(df))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("download-facts", help="download Known-1000 and validate it")
    s.add_argument("--url", required=True, help="where to download the facts JSON from (facts.url)")
    s.add_argument("--sha256", default=None, help="facts.sha256 (none: not checked)")
    s.add_argument("--out", required=True, help="the facts JSON file to write")
    s.set_defaults(func=cmd_download_facts)

    s = sub.add_parser("validate-facts", help="validate a facts file: a WARNING line per skipped row; exit status "
                       "2 when a row is skipped, unless --allow-skipped")
    s.add_argument("facts", help="the facts JSON file (Known-1000 format)")
    s.add_argument("--allow-skipped", action="store_true",
                   help="exit 0 even when rows are skipped (the workflow's behaviour: skip them with a reason)")
    s.set_defaults(func=cmd_validate_facts)

    s = sub.add_parser("shard", help="write one shard of the facts as a `prompts` table")
    s.add_argument("--facts", required=True, help="the facts JSON file (Known-1000 format)")
    s.add_argument("--shard", required=True, help="the shard's name (as the workflow numbers them, e.g. 0000)")
    s.add_argument("--shard-size", type=int, required=True, help="facts.shard_size")
    s.add_argument("--limit", type=int, default=None, help="facts.limit (none: every fact)")
    s.add_argument("--out", required=True, help="the `prompts` Parquet table to write")
    s.set_defaults(func=cmd_shard)
