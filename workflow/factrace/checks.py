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
    for path in sorted(Path(root).rglob("*.parquet")):
        if any(part.endswith(".parts") for part in path.parts) or path.name.startswith("."):
            continue
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


def cmd_check_tables(args: argparse.Namespace) -> None:
    root = Path(args.results)
    damaged = damaged_tables(root)
    if damaged:
        raise SystemExit(rebuild_message(damaged, root))
    log.info("%s: every table is readable", root)


def cmd_check_facts(args: argparse.Namespace) -> None:
    from . import io
    from .facts.known import load_facts_checked, skipped_frame
    from .provenance import Provenance, config_hash

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
    s.add_argument("--facts", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_check_facts)


# ---------------------------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class CheckpointRequirement:
    """A local checkpoint the run needs: the config key naming it, its path and what must be there."""

    key: str
    path: str | None
    expect: str  # what is expected there, for the message
    files: tuple[tuple[str, ...], ...] = ()  # alternatives: one of these sets of relative files must exist

    def problem(self) -> str | None:
        if not self.path:
            return f"`{self.key}` is not set; set it to {self.expect}"
        base = Path(self.path)
        if not base.is_dir():
            return f"`{self.key}`: {base} is not a directory; it must hold {self.expect}"
        if self.files and not any(all((base / f).is_file() for f in alt) for alt in self.files):
            want = " or ".join("{" + ", ".join(str(base / f) for f in alt) + "}" for alt in self.files)
            return f"`{self.key}`: {base} does not hold {self.expect} (expected {want})"
        return None


SPIRITLM_UNIT_FILES = ("mhubert_base_25hz.pt", "L11_quantizer_500.pt")


def speech_checkpoint_requirements(config: dict) -> list[CheckpointRequirement]:
    """The speech stage's checkpoints that the config asks for (none on the offline default)."""
    speech = config.get("speech") or {}
    if not speech.get("enabled"):
        return []
    out = []
    align = speech.get("alignment") or {}
    if "hubert-ctc" in {align.get("method"), *(align.get("compare") or [])}:
        out.append(CheckpointRequirement(
            "speech.alignment.ctc_model", align.get("ctc_model"),
            "a HubertForCTC checkpoint directory (the files of facebook/hubert-large-ls960-ft: config.json, "
            "weights, vocab.json, preprocessor_config.json)",
            (("config.json",),),
        ))
    units = speech.get("units") or {}
    if units.get("backend") == "spiritlm":
        import os

        path = units.get("checkpoints_dir") or os.environ.get("SPIRITLM_CHECKPOINTS_DIR")
        out.append(CheckpointRequirement(
            "speech.units.checkpoints_dir", path,
            "SpiritLM's checkpoints directory with the HuBERT 25 Hz speech tokenizer (or set env "
            "SPIRITLM_CHECKPOINTS_DIR)",
            tuple(tuple(f"{sub}{f}" for f in SPIRITLM_UNIT_FILES)
                  for sub in ("speech_tokenizer/hubert_25hz/", "hubert_25hz/", "")),
        ))
    return out


def checkpoint_problems(requirements: list[CheckpointRequirement]) -> list[str]:
    """One message per missing or incomplete checkpoint (empty when every one is in place)."""
    return [p for r in requirements if (p := r.problem()) is not None]
