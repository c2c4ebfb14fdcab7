"""Commands on stage tables of any contract: ``merge`` (concatenate, sorted, with merged provenance) and
``provenance`` (print what a Parquet table records about how it was made)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from factrace.core import io


def cmd_merge(args: argparse.Namespace) -> None:
    df = io.read_tables(args.inputs, args.contract)
    sort = [c for c in ("known_id", "kind", "layer", "position") if c in df.columns]
    if sort:
        df = df.sort_values(sort, ignore_index=True)
    io.write_table(df, args.out, args.contract, io.merged_provenance(args.inputs))


PROVENANCE_FIX = "give a .parquet file under results/"


def cmd_provenance(args: argparse.Namespace) -> None:
    import pyarrow as pa

    from factrace.core.contracts import ContractError

    path = Path(args.file)
    if not path.exists():
        raise ContractError(f"{path}: no such file ({PROVENANCE_FIX})")
    if path.is_dir():
        raise ContractError(f"{path}: is a directory, not a table ({PROVENANCE_FIX})")
    try:
        prov = io.read_provenance(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise ContractError(f"{path}: not a Parquet table written by factrace ({PROVENANCE_FIX})") from err
    print(json.dumps(prov, indent=2, sort_keys=True))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("merge", help="concatenate tables of one contract")
    s.add_argument("--contract", required=True, help="the contract the inputs follow (core/contracts.py)")
    s.add_argument("--inputs", nargs="+", required=True, help="the shard tables to concatenate")
    s.add_argument("--out", required=True, help="the merged table (sorted, provenance merged)")
    s.set_defaults(func=cmd_merge)

    s = sub.add_parser("provenance", help="print the provenance stored in a Parquet file")
    s.add_argument("file", help="a Parquet table written by factrace")
    s.set_defaults(func=cmd_provenance)
