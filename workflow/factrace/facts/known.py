"""Load and validate facts in the Known-1000 format (Meng et al. 2022) and assign them to shards.

A fact is ``known_id, subject, attribute, template, prediction, prompt, relation_id``. Validation gives errors
that name the file, the row (index and known_id) and the fix; it never drops a fact silently.
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


def _row_problem(i: int, rec: object) -> list[str]:
    if not isinstance(rec, dict):
        return [f"row {i}: expected an object with fields {', '.join(FIELDS)}, got {type(rec).__name__}"]
    rid = rec.get("known_id", "?")
    where = f"row {i} (known_id={rid})"
    problems = []
    for f in REQUIRED:
        v = rec.get(f)
        if v is None:
            problems.append(f"{where}: field {f!r} is missing; add it")
        elif f != "known_id" and (not isinstance(v, str) or not v.strip()):
            problems.append(f"{where}: field {f!r} is empty; give it a non-empty string")
    kid = rec.get("known_id")
    if kid is not None and (isinstance(kid, bool) or not isinstance(kid, int) or kid < 0):
        problems.append(f"{where}: known_id must be a non-negative integer, got {kid!r}")
    subj, prompt = rec.get("subject"), rec.get("prompt")
    if isinstance(subj, str) and isinstance(prompt, str) and subj.strip() and subj not in prompt:
        problems.append(
            f"{where}: subject {subj!r} does not occur in prompt {prompt!r}; fix the subject or the prompt "
            "(causal tracing corrupts the subject's tokens, so it must appear verbatim)"
        )
    tmpl = rec.get("template")
    if isinstance(tmpl, str) and tmpl and "{}" not in tmpl:
        problems.append(f"{where}: template {tmpl!r} has no '{{}}' placeholder for the subject")
    return problems


def validate_records(records: list[object], source: str) -> list[Fact]:
    """Validate raw records; raise one FactsError listing every problem (file, row, fix)."""
    if not isinstance(records, list):
        raise FactsError(f"{source}: expected a JSON list of facts, got {type(records).__name__}")
    problems: list[str] = []
    seen: dict[int, int] = {}
    for i, rec in enumerate(records):
        problems.extend(_row_problem(i, rec))
        if isinstance(rec, dict) and isinstance(rec.get("known_id"), int):
            kid = rec["known_id"]
            if kid in seen:
                problems.append(
                    f"row {i} (known_id={kid}): duplicate known_id, also at row {seen[kid]}; give each fact its "
                    "own id"
                )
            seen.setdefault(kid, i)
    if problems:
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise FactsError(f"{source}: {len(problems)} problem(s) in the facts:\n  " + "\n  ".join(shown) + more)
    facts = []
    for rec in records:
        assert isinstance(rec, dict)
        subject = rec["subject"]
        template = rec.get("template") or rec["prompt"].replace(subject, "{}", 1)
        facts.append(
            Fact(
                known_id=int(rec["known_id"]),
                subject=subject,
                attribute=rec["attribute"].strip(),
                template=template,
                prediction=str(rec.get("prediction") or ""),
                prompt=rec["prompt"],
                relation_id=str(rec.get("relation_id") or ""),
            )
        )
    return facts


def load_facts(path: str | Path) -> list[Fact]:
    """Read and validate a Known-1000 style JSON file."""
    path = Path(path)
    if not path.is_file():
        raise FactsError(f"{path}: facts file not found; set `facts.path` in the config to an existing file")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FactsError(f"{path}: not valid JSON ({err}); fix the file or download it again") from err
    return validate_records(records, str(path))


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
