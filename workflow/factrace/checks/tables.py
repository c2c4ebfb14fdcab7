"""Commands on stage tables of any contract: ``merge`` (concatenate, sorted, with merged provenance),
``provenance`` (print what a Parquet table records about how it was made) and ``describe`` (print each column
of a table or contract with its dtype and one-line description)."""

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


DESCRIBE_FIX = "give a .parquet file under results/ or a contract name"
KIND_DTYPES = {"i": "int64", "f": "float64", "O": "string", "b": "bool"}


def describe_lines(target: str) -> list[str]:
    """The lines ``factrace describe`` prints for a Parquet file or a contract name: a header, then one line per
    column (name, dtype, description). A file's descriptions come from its schema, else from its contract."""
    import pyarrow as pa

    from factrace.core.contracts import CONTRACTS, TABLES, ContractError, describe

    path = Path(target)
    if target in CONTRACTS and not path.is_file():
        head = [f"contract {target}: one row = {TABLES[target]}"]
        rows = [(c, KIND_DTYPES[CONTRACTS[target][c]] if c in CONTRACTS[target] else "extra", d)
                for c, d in describe(target).items()]
    else:
        if not path.exists():
            raise ContractError(f"{target}: no such file or contract ({DESCRIBE_FIX}: {', '.join(CONTRACTS)})")
        if path.is_dir():
            raise ContractError(f"{path}: is a directory, not a table ({DESCRIBE_FIX})")
        try:
            contract = io.read_provenance(path).get("contract")
            rows = io.column_descriptions(path)
        except (pa.ArrowInvalid, OSError) as err:
            raise ContractError(f"{path}: not a Parquet table ({DESCRIBE_FIX})") from err
        what = f"contract {contract}: one row = {TABLES[contract]}" if contract in TABLES else "no contract"
        head = [f"{path} ({what})"]
    width = max([len(r[0]) for r in rows] + [6])
    dwidth = max([len(r[1]) for r in rows] + [5])
    return [*head, *(f"  {c:<{width}}  {t:<{dwidth}}  {d or '(no description)'}" for c, t, d in rows)]


def cmd_describe(args: argparse.Namespace) -> None:
    print("\n".join(describe_lines(args.target)))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("merge", help="concatenate tables of one contract")
    s.add_argument("--contract", required=True, help="the contract the inputs follow (core/contracts.py)")
    s.add_argument("--inputs", nargs="+", required=True, help="the shard tables to concatenate")
    s.add_argument("--out", required=True, help="the merged table (sorted, provenance merged)")
    s.set_defaults(func=cmd_merge)

    s = sub.add_parser("provenance", help="print the provenance stored in a Parquet file")
    s.add_argument("file", help="a Parquet table written by factrace")
    s.set_defaults(func=cmd_provenance)

    s = sub.add_parser("describe", help="print each column of a table (or contract) with its dtype and meaning")
    s.add_argument("target", metavar="TABLE_OR_CONTRACT",
                   help="a .parquet file (descriptions from its schema) or a contract name (trace, aie, ...)")
    s.set_defaults(func=cmd_describe)
