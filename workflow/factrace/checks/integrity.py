"""Check commands: the facts file's skipped rows (`check-facts`) and the integrity of written tables
(`check-tables`). Nothing here runs while Snakemake parses the workflow: these are jobs or user commands."""

from __future__ import annotations

import argparse
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

log = logging.getLogger(__name__)

# The rule that writes each kind of table, by the directory under the results root (for the messages).
RULE_BY_DIR = {
    "prompts": "shard", "filter": "filter", "trace": "trace / merge_trace", "aie": "aie", "noise": "noise_scale",
    "gap": "modality_gap", "compare": "compare", "speech/audio": "tts", "speech/asr": "asr",
    "speech/alignment": "align", "speech/tokens": "speech_tokens", "speech/token_map": "token_map",
}


@dataclass(frozen=True)
class DamagedTable:
    path: Path
    problem: str


def damaged_tables(root: str | Path) -> list[DamagedTable]:
    """Every Parquet table under ``root`` whose footer cannot be read (truncated, overwritten, empty).

    A trace job's ``.parts`` directories are skipped: the job checks its own parts and recomputes bad ones.
    Read-only: nothing is removed.
    """
    out = []
    for path in table_paths(root):
        try:
            pq.read_metadata(path)
        except Exception as err:  # noqa: BLE001 - any failure to read the footer means the table is unusable
            out.append(DamagedTable(path, str(err)))
    return out


def rule_for(path: Path, root: Path) -> str:
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        return "the rule that writes it"
    for prefix in sorted(RULE_BY_DIR, key=len, reverse=True):
        if rel.startswith(prefix + "/"):
            return f"rule `{RULE_BY_DIR[prefix]}`"
    return "the rule that writes it"


def rebuild_message(damaged: list[DamagedTable], root: Path) -> str:
    lines = [f"{len(damaged)} damaged table(s) under {root}:"]
    lines += [f"  {d.path}: {d.problem} (written by {rule_for(d.path, root)})" for d in damaged]
    files = " ".join(shlex.quote(str(d.path)) for d in damaged)
    lines.append(
        "Rebuild them, and everything that depends on them, by removing them and rerunning the workflow (every "
        f"table is a target of `snakemake`):\n  rm -- {files} && snakemake <your usual options>"
    )
    return "\n".join(lines)


def table_paths(root: str | Path) -> list[Path]:
    """The tables check-tables looks at under ``root`` (a trace job's ``.parts`` and hidden files left out)."""
    return [p for p in sorted(Path(root).rglob("*.parquet"))
            if not (any(part.endswith(".parts") for part in p.parts) or p.name.startswith("."))]


def cmd_check_tables(args: argparse.Namespace) -> None:
    root = Path(args.results)
    if not root.exists():
        raise SystemExit(f"factrace check-tables: {root}: no such directory (give the results directory, config "
                         "`results`)")
    if not root.is_dir():
        raise SystemExit(f"factrace check-tables: {root}: not a directory (give the results directory, config "
                         "`results`)")
    if not table_paths(root):
        raise SystemExit(f"factrace check-tables: {root}: no Parquet table under it (give the results directory, "
                         "config `results`, after the workflow has written tables)")
    damaged = damaged_tables(root)
    if damaged:
        raise SystemExit(rebuild_message(damaged, root))
    log.info("%s: every table (%d) is readable", root, len(table_paths(root)))


def cmd_check_facts(args: argparse.Namespace) -> None:
    from factrace.core import io
    from factrace.core.provenance import Provenance, config_hash
    from factrace.facts.known import load_facts_checked, skipped_frame

    facts, skipped = load_facts_checked(args.facts)
    for s in skipped:
        log.warning("skipped: %s", s.describe())
    prov = Provenance(stage="check_facts", config_hash=config_hash({"facts": str(args.facts)}),
                      extra={"n_facts": len(facts), "n_skipped": len(skipped)})
    io.write_table(skipped_frame(skipped), args.out, "skipped_facts", prov)
    rows = len({s.row for s in skipped})
    log.info("%s: %d facts usable, %d row(s) skipped (reasons in %s)", args.facts, len(facts), rows, args.out)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("check-tables", help="list damaged (unreadable) tables under a results directory and the "
                       "command that rebuilds them; exit status 1 when there are any")
    s.add_argument("results", help="the results directory (config `results`)")
    s.set_defaults(func=cmd_check_tables)

    s = sub.add_parser("check-facts", help="the facts file's skipped rows (file, row, known_id, reason)")
    s.add_argument("--facts", required=True, help="the facts JSON file (Known-1000 format)")
    s.add_argument("--out", required=True, help="the `skipped_facts` Parquet table to write")
    s.set_defaults(func=cmd_check_facts)
