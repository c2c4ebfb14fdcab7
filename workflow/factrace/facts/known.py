"""Load and validate facts in the Known-1000 format (Meng et al. 2022) and assign them to shards.

A fact is ``known_id, subject, attribute, template, prediction, prompt, relation_id``. A bad row (a missing or
mistyped field, a template without ``{}``, a subject not in its prompt, a duplicate id) is skipped with its reason
(file, row, known_id, reason: the `skipped_facts` table) and the other facts go on; a file that cannot be read as a
list of facts, or that has no usable fact at all, is an error naming the file, the rows and the fix.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

FIELDS = ("known_id", "subject", "attribute", "template", "prediction", "prompt", "relation_id")
REQUIRED = ("known_id", "subject", "attribute", "prompt")


class FactsError(ValueError):
    """The facts file cannot be used as it is."""


@dataclass(frozen=True)
class Fact:
    known_id: int
    subject: str
    attribute: str
    template: str
    prediction: str
    prompt: str
    relation_id: str


@dataclass(frozen=True)
class SkippedFact:
    """A row of the facts file that was left out, and why."""

    file: str
    row: int
    known_id: int | None  # None when the row has no usable id
    reason: str

    @property
    def fix(self) -> str:
        """How to repair the row: the reason's text after ';' where it says, else a general fix."""
        _, sep, fix = self.reason.partition("; ")
        return fix if sep else "fix or remove this row in the facts file"

    def describe(self) -> str:
        kid = "?" if self.known_id is None else self.known_id
        return f"{self.file}: row {self.row} (known_id={kid}): {self.reason}"


def _describe_type(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def _row_problem(i: int, rec: object) -> list[str]:
    """The reasons a record cannot be used (empty when it can)."""
    if not isinstance(rec, dict):
        return [f"expected an object with fields {', '.join(FIELDS)}, got {_describe_type(rec)}"]
    problems = []
    for f in REQUIRED:
        v = rec.get(f)
        if v is None:
            problems.append(f"field {f!r} is missing; add it")
        elif f == "known_id":
            continue
        elif not isinstance(v, str):
            problems.append(f"field {f!r} must be a string, got {_describe_type(v)}; quote it in the facts file")
        elif not v.strip():
            problems.append(f"field {f!r} is empty; give it a non-empty string")
    for f in ("template", "prediction", "relation_id"):
        v = rec.get(f)
        if v is not None and not isinstance(v, str):
            problems.append(f"field {f!r} must be a string, got {_describe_type(v)}; quote it in the facts file")
    kid = rec.get("known_id")
    if kid is not None and (isinstance(kid, bool) or not isinstance(kid, int) or kid < 0):
        problems.append(f"known_id must be a non-negative integer, got {kid!r}")
    subj, prompt = rec.get("subject"), rec.get("prompt")
    if isinstance(subj, str) and isinstance(prompt, str) and subj.strip() and subj not in prompt:
        problems.append(
            f"subject {subj!r} does not occur in prompt {prompt!r}; fix the subject or the prompt "
            "(causal tracing corrupts the subject's tokens, so it must appear verbatim)"
        )
    tmpl = rec.get("template")
    if isinstance(tmpl, str) and tmpl and "{}" not in tmpl:
        problems.append(f"template {tmpl!r} has no '{{}}' placeholder for the subject; put {{}} where the subject goes")
    return problems


def _usable_id(rec: object) -> int | None:
    kid = rec.get("known_id") if isinstance(rec, dict) else None
    return kid if isinstance(kid, int) and not isinstance(kid, bool) and kid >= 0 else None


def _fact(rec: dict) -> Fact:
    subject = rec["subject"]
    return Fact(
        known_id=int(rec["known_id"]),
        subject=subject,
        attribute=rec["attribute"].strip(),
        template=rec.get("template") or rec["prompt"].replace(subject, "{}", 1),
        prediction=str(rec.get("prediction") or ""),
        prompt=rec["prompt"],
        relation_id=str(rec.get("relation_id") or ""),
    )


def check_records(records: object, source: str) -> tuple[list[Fact], list[SkippedFact]]:
    """The usable facts and the skipped rows with their reasons.

    Raises FactsError when ``records`` is not a list, or when it is not empty and no row is usable (the message
    lists every problem: file, row, fix).
    """
    if not isinstance(records, list):
        raise FactsError(f"{source}: expected a JSON list of facts, got {type(records).__name__}")
    facts: list[Fact] = []
    skipped: list[SkippedFact] = []
    seen: dict[int, int] = {}
    for i, rec in enumerate(records):
        problems = _row_problem(i, rec)
        kid = _usable_id(rec)
        if not problems and kid is not None and kid in seen:
            problems = [f"duplicate known_id, also at row {seen[kid]}; give each fact its own id"]
        if problems:
            skipped.extend(SkippedFact(source, i, kid, p) for p in problems)
            continue
        assert isinstance(rec, dict) and kid is not None
        seen[kid] = i
        facts.append(_fact(rec))
    if records and not facts:
        lines = [s.describe().removeprefix(f"{source}: ") for s in skipped]
        shown = lines[:20]
        more = f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else ""
        raise FactsError(f"{source}: no usable fact; {len(lines)} problem(s):\n  " + "\n  ".join(shown) + more)
    for s in skipped:
        log.debug("skipped: %s", s.describe())
    return facts, skipped


def validate_records(records: list[object], source: str) -> list[Fact]:
    """The usable facts of ``records`` (bad rows skipped: see check_records)."""
    return check_records(records, source)[0]


def skipped_frame(skipped: list[SkippedFact]) -> pd.DataFrame:
    """The `skipped_facts` table: file, row, known_id (nullable), reason."""
    return pd.DataFrame(
        {
            "file": pd.Series([s.file for s in skipped], dtype="object"),
            "row": pd.Series([s.row for s in skipped], dtype="int64"),
            "known_id": pd.Series([s.known_id for s in skipped], dtype="Int64"),
            "reason": pd.Series([s.reason for s in skipped], dtype="object"),
        }
    )


def read_records(path: str | Path) -> object:
    """The parsed JSON of a facts file (FactsError naming the config key or the fix when it cannot be read)."""
    path = Path(path)
    if not path.is_file():
        raise FactsError(f"{path}: facts file not found; set `facts.path` in the config to an existing file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FactsError(f"{path}: not valid JSON ({err}); fix the file or download it again") from err


def load_facts_checked(path: str | Path) -> tuple[list[Fact], list[SkippedFact]]:
    """Read a Known-1000 style JSON file: the usable facts and the skipped rows."""
    return check_records(read_records(path), str(path))


def load_facts(path: str | Path) -> list[Fact]:
    """Read a Known-1000 style JSON file: its usable facts (bad rows are skipped; see load_facts_checked)."""
    return load_facts_checked(path)[0]


def shard_of(known_id: int, shard_size: int) -> int:
    """Shard membership depends on ``known_id`` only: editing one fact changes one shard."""
    if shard_size < 1:
        raise ValueError("shard_size must be >= 1")
    return known_id // shard_size


def shard_name(shard: int) -> str:
    return f"{shard:04d}"


def facts_frame(facts: list[Fact], shard_size: int) -> pd.DataFrame:
    """The `prompts` contract table for a list of facts."""
    rows = [
        {
            "known_id": f.known_id,
            "subject": f.subject,
            "attribute": f.attribute,
            "prompt": f.prompt,
            "template": f.template,
            "relation_id": f.relation_id,
            "prediction": f.prediction,
            "shard": shard_of(f.known_id, shard_size),
        }
        for f in facts
    ]
    df = pd.DataFrame(rows, columns=[*FIELDS, "shard"])
    return df.astype({"known_id": "int64", "shard": "int64"}).sort_values("known_id", ignore_index=True)


def shards(facts: list[Fact], shard_size: int, limit: int | None = None) -> dict[str, list[Fact]]:
    """Facts grouped by shard name, optionally keeping only the first ``limit`` facts by known_id."""
    ordered = sorted(facts, key=lambda f: f.known_id)
    if limit is not None:
        ordered = ordered[:limit]
    out: dict[str, list[Fact]] = {}
    for f in ordered:
        out.setdefault(shard_name(shard_of(f.known_id, shard_size)), []).append(f)
    return out


def shard_frame(path: str | Path, shard: str, shard_size: int, limit: int | None) -> pd.DataFrame:
    """The `prompts` table of shard ``shard`` (its name) of the facts file at ``path``: its usable facts, of the
    first ``limit`` by known_id when ``limit`` is set."""
    return facts_frame(shards(load_facts(path), shard_size, limit).get(shard, []), shard_size)
