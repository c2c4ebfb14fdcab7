"""``factrace plan``: what a config would submit on a profile, before anything is submitted.

It runs Snakemake's dry run (``snakemake -n``) with the profile and the config, without Slurm and without the
weights (``FACTRACE_PLAN_ONLY=1`` skips the checkpoint check), reads every planned job's rule, wildcards and
resources from its output, and puts next to the requested runtime the estimate of ``factrace.planning.resources`` (the
same functions the rules' resources call). Printed: jobs per rule, GPU jobs, model loads, requested and estimated
GPU-hours, the share of model loading in the trace jobs' GPU time, then one JSON line with those figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factrace.planning.resources import MODEL_RULES, estimate

log = logging.getLogger(__name__)
PLACEHOLDER_ENV = {"SLURM_ACCOUNT": "plan", "SLURM_PARTITION": "cpu", "SLURM_GPU_PARTITION": "gpu"}


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    wildcards: dict[str, str]
    resources: dict[str, str]

    @property
    def gpus(self) -> int:
        """GPUs the job asks for: the `gpu` resource, a GPU `gres`, or a GPU option in `slurm_extra`."""
        n = int(float(self.resources.get("gpu", 0) or 0))
        if n:
            return n
        gres = self.resources.get("gres", "")
        extra = self.resources.get("slurm_extra", "")
        if "gpu" in gres or re.search(r"--gpus|--gres[= ]gpu", extra):
            return 1
        return 0

    @property
    def runtime_min(self) -> float:
        return float(self.resources.get("runtime", 0) or 0)


def _pairs(text: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=([^,]*)", text))


def parse_dry_run(text: str) -> list[PlannedJob]:
    """The jobs of ``snakemake -n`` output (blocks that start with ``rule X:`` or ``localrule X:``)."""
    jobs: list[PlannedJob] = []
    rule: str | None = None
    wc: dict[str, str] = {}
    res: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m or not line.strip():
            if rule is not None:
                jobs.append(PlannedJob(rule, wc, res))
            rule, wc, res = (m.group(1), {}, {}) if m else (None, {}, {})
            continue
        if rule is not None:
            s = line.strip()
            if s.startswith("wildcards: "):
                wc = {k: v.strip() for k, v in _pairs(s[len("wildcards: "):]).items()}
            elif s.startswith("resources: "):
                res = {k: v.strip() for k, v in _pairs(s[len("resources: "):]).items()}
    return jobs


def shard_facts(config: dict[str, Any]) -> dict[str, int]:
    """Facts per shard, as the workflow plans them (common.smk: downloaded files from `facts.expected_ids`)."""
    from factrace.facts.known import load_facts, shard_name, shards

    f = config["facts"]
    size, limit = int(f["shard_size"]), f["limit"]
    if f["url"]:
        lo, hi = f.get("expected_ids") or [0, 0]
        ids = list(range(lo, hi))[:limit] if limit else list(range(lo, hi))
        return dict(Counter(shard_name(i // size) for i in ids))
    return {name: len(fs) for name, fs in shards(load_facts(f["path"]), size, limit).items()}


def dry_run(configfile: str, profile: str | None, targets: list[str], cwd: Path) -> str:
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe) if exe.exists() else "snakemake", "-n", "--configfile", configfile]
    if profile:
        cmd += ["--profile", profile]
    env = {**PLACEHOLDER_ENV, **os.environ, "FACTRACE_PLAN_ONLY": "1"}
    proc = subprocess.run([*cmd, *targets], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout + proc.stderr


def summarise(jobs: list[PlannedJob], config: dict[str, Any]) -> dict[str, Any]:
    """Per rule and in total: jobs, GPU jobs, model loads, requested and estimated GPU-hours."""
    facts = shard_facts(config)
    per_rule: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    trace_load = trace_total = 0.0
    max_load_fraction = 0.0
    for j in jobs:
        r = per_rule[j.rule]
        r["jobs"] += 1
        if j.rule in MODEL_RULES:
            r["model_loads"] += 1
        if not j.gpus:
            continue
        r["gpu_jobs"] += 1
        r["requested_gpu_hours"] += j.gpus * j.runtime_min / 60.0
        est = None
        if j.rule in MODEL_RULES and "model" in j.wildcards:
            shard = j.wildcards.get("shard")
            n = facts[shard] if shard else sum(facts.values())
            est = estimate(config, j.rule, j.wildcards["model"], j.wildcards.get("modality"), n)
        if est is None:
            r["unestimated_gpu_jobs"] += 1
            continue
        r["estimated_gpu_hours"] += j.gpus * est.total_s / 3600.0
        if j.rule == "trace":
            trace_load += est.load_s
            trace_total += est.total_s
            max_load_fraction = max(max_load_fraction, est.load_fraction)
    total = {k: math.fsum(r.get(k, 0.0) for r in per_rule.values()) for k in
             ("jobs", "gpu_jobs", "model_loads", "requested_gpu_hours", "estimated_gpu_hours", "unestimated_gpu_jobs")}
    est_h = total["estimated_gpu_hours"]
    return {
        "jobs": int(total["jobs"]),
        # most jobs first, ties by rule name: the dry run lists jobs in no fixed order, the table must not change with it
        "jobs_per_rule": {rule: int(r["jobs"]) for rule, r in sorted(per_rule.items(), key=lambda kv: (-kv[1]["jobs"], kv[0]))},
        "gpu_jobs": int(total["gpu_jobs"]),
        "model_loads": int(total["model_loads"]),
        "requested_gpu_hours": round(total["requested_gpu_hours"], 2),
        "estimated_gpu_hours": round(est_h, 2),
        "requested_over_estimated": round(total["requested_gpu_hours"] / est_h, 3) if est_h else None,
        "unestimated_gpu_jobs": int(total["unestimated_gpu_jobs"]),
        "trace_load_fraction": round(trace_load / trace_total, 4) if trace_total else None,
        "max_trace_job_load_fraction": round(max_load_fraction, 4) if trace_total else None,
        "per_rule": {rule: {k: round(v, 2) for k, v in r.items()} for rule, r in per_rule.items()},
    }


def format_table(summary: dict[str, Any]) -> str:
    cols = ("jobs", "gpu_jobs", "model_loads", "requested_gpu_hours", "estimated_gpu_hours")
    rows = [[rule, *(summary["per_rule"][rule].get(c, 0) for c in cols)] for rule in summary["jobs_per_rule"]]
    rows.append(["total", summary["jobs"], summary["gpu_jobs"], summary["model_loads"],
                 summary["requested_gpu_hours"], summary["estimated_gpu_hours"]])
    head = ["rule", *cols]
    cells = [[f"{v:,.2f}" if isinstance(v, float) and not v.is_integer() else f"{int(v):,}"
              if isinstance(v, (int, float)) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
              for row in cells]
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace) -> None:
    from factrace.core.config import load_config

    config = load_config(args.configfile)
    jobs = parse_dry_run(dry_run(args.configfile, args.profile, args.targets, Path(args.directory)))
    summary = summarise(jobs, config)
    res = config.get("resources", {})
    print(f"plan of {args.configfile} on {args.profile or 'no profile'} (dry run; runtime = margin "
          f"{res.get('margin')} x cost model, at least {res.get('min_runtime')} min; factrace/planning/resources.py)")
    print(format_table(summary))
    if summary["requested_over_estimated"] is not None:
        print(f"requested / estimated GPU-hours: {summary['requested_over_estimated']:.2f}; model loading: "
              f"{100 * summary['trace_load_fraction']:.1f}% of the trace jobs' GPU time (at most "
              f"{100 * summary['max_trace_job_load_fraction']:.1f}% of one job's)")
    else:
        print("no GPU throughput in the config (resources.trace.gpu_tflops): no estimate")
    print(json.dumps({k: v for k, v in summary.items() if k != "per_rule"}))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("plan", help="jobs, GPU jobs, model loads, requested vs estimated GPU-hours of a config "
                                    "on a profile (a dry run; no Slurm, no weights)")
    s.add_argument("--configfile", required=True, help="the config file (merged over the default config)")
    s.add_argument("--profile", default=None, help="e.g. profiles/slurm")
    s.add_argument("--directory", default=".", help="the workflow's directory (where `snakemake` would run)")
    s.add_argument("targets", nargs="*", help="Snakemake targets (default: the whole workflow)")
    s.set_defaults(func=cmd_plan)

