"""``factrace timings``: where a run's time went, per stage, from Snakemake's benchmark files.

Every rule writes ``{results}/benchmarks/<rule>/….tsv`` (Snakemake's ``benchmark:``: wall seconds ``s`` and peak
memory ``max_rss`` of the job). A rule's stage is the rule file that defines it (``workflow/rules/<stage>.smk``).
The table sums the job wall times per stage (jobs that ran side by side both count, so the sum can exceed the
run's elapsed time), the longest job and the largest peak memory; then one JSON line, also written to
``{results}/timings.json`` (README's timing table is made from it by ``make numbers``). ``make demo`` prints it at
the end with the seconds it took to create (or check) ``.venv`` and to run the workflow, so that a user sees the
cost of each stage and a regression shows.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
#: the stages in the order the workflow runs them (README's table); a stage not listed sorts last
STAGE_ORDER = ("facts", "models", "speech", "speechlm", "filter", "trace", "aggregate", "compare", "report")


@dataclass(frozen=True)
class StageTime:
    stage: str
    jobs: int
    job_seconds: float  # the sum of its jobs' wall times
    longest_job_s: float
    longest_rule: str
    max_rss_mb: float


def rule_stages(rules_dir: Path = RULES_DIR) -> dict[str, str]:
    """Rule name -> the stem of the rule file that defines it."""
    out = {}
    for f in sorted(rules_dir.glob("*.smk")):
        for m in re.finditer(r"^(?:rule|checkpoint) (\w+):", f.read_text(), re.MULTILINE):
            out[m.group(1)] = f.stem
    return out


def read_benchmark(path: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one benchmark file (the last row: a repeated benchmark keeps the last)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path}: empty benchmark file")
    row = rows[-1]

    def num(key: str) -> float:
        try:
            return float(row.get(key) or 0.0)
        except ValueError:  # Snakemake writes "-" where it could not measure
            return 0.0

    return num("s"), num("max_rss")


def stage_times(benchmarks: Path, stages: dict[str, str]) -> list[StageTime]:
    """Per stage: jobs, summed wall time, the longest job and the largest peak memory, in the workflow's order."""
    acc: dict[str, dict] = {}
    for path in sorted(benchmarks.rglob("*.tsv")):
        rel = path.relative_to(benchmarks)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem  # `<rule>/….tsv`, or `<rule>.tsv` for one-job rules
        stage = stages.get(rule, rule)
        seconds, rss = read_benchmark(path)
        a = acc.setdefault(stage, {"jobs": 0, "s": 0.0, "long": 0.0, "rule": "", "rss": 0.0})
        a["jobs"] += 1
        a["s"] += seconds
        a["rss"] = max(a["rss"], rss)
        if seconds >= a["long"]:
            a["long"], a["rule"] = seconds, rule

    def order(stage: str) -> tuple[int, str]:
        return (STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER), stage)

    return [StageTime(s, a["jobs"], round(a["s"], 1), round(a["long"], 1), a["rule"], round(a["rss"], 1))
            for s, a in sorted(acc.items(), key=lambda kv: order(kv[0]))]


def format_table(rows: list[StageTime], elapsed_s: float | None = None, setup_s: float | None = None) -> str:
    total = sum(r.job_seconds for r in rows)
    lines = [f"{'stage':<10} {'jobs':>5} {'job s':>8} {'share':>6} {'longest job':>24} {'peak MB':>8}"]
    for r in rows:
        share = r.job_seconds / total if total else 0.0
        longest = f"{r.longest_rule} {r.longest_job_s:.0f} s"
        lines.append(f"{r.stage:<10} {r.jobs:>5} {r.job_seconds:>8.0f} {share:>6.0%} {longest:>24} {r.max_rss_mb:>8.0f}")
    lines.append(f"{'all':<10} {sum(r.jobs for r in rows):>5} {total:>8.0f}")
    if elapsed_s is not None:
        lines.append(f"elapsed {elapsed_s:.0f} s on the clock (jobs ran side by side: job seconds can exceed it)")
    if setup_s is not None:
        total = setup_s + (elapsed_s or 0.0)
        lines.append(f"set-up (.venv) {setup_s:.0f} s; in all {total:.0f} s = {total // 60:.0f} min {total % 60:.0f} s")
    return "\n".join(lines)


def cmd_timings(args: argparse.Namespace) -> None:
    benchmarks = Path(args.results) / "benchmarks"
    if not benchmarks.is_dir():
        raise SystemExit(f"factrace timings: {benchmarks}: no benchmark files (run the workflow first)")
    rows = stage_times(benchmarks, rule_stages())
    print(f"where the time went ({benchmarks}: Snakemake's benchmark files, wall seconds per job)")
    print(format_table(rows, args.elapsed, args.setup))
    line = json.dumps({"elapsed_s": args.elapsed, "setup_s": args.setup, "stages": [asdict(r) for r in rows]})
    (Path(args.results) / "timings.json").write_text(line + "\n")
    print(line)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("timings", help="wall time per stage of a run, from Snakemake's benchmark files")
    s.add_argument("--results", required=True, help="the results directory (config `results`)")
    s.add_argument("--elapsed", type=float, default=None, help="the run's elapsed seconds, shown beside the sum")
    s.add_argument("--setup", type=float, default=None, help="seconds spent creating or checking .venv first")
    s.set_defaults(func=cmd_timings)
