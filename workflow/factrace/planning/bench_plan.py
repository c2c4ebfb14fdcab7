"""``factrace bench-plan``: how long Snakemake takes to plan a config at scale, on a synthetic results tree.

In a scratch directory it writes a copy of the config whose facts are ``--facts`` synthetic facts (a downloaded
file, so the shards come from ``facts.expected_ids``) in shards of ``--shard-size``, then times:

1. a dry run on an empty results tree (the whole DAG to run);
2. a dry run on a complete tree: every output of step 1 written as a small valid table (same mtime, newer than
   the facts), plus ``--extra-tables`` stale Parquet tables that no rule makes (left by an older job shape);
   the parse-time Parquet footer check, if the workflow has one, reads all of them;
3. reading every footer of that tree alone (what such a check costs).

Checkpoints are not needed (``FACTRACE_PLAN_ONLY``). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from factrace.core.config import load_config
from factrace.planning.plan import PLACEHOLDER_ENV, parse_dry_run

WORKFLOW = Path(__file__).resolve().parents[3]  # the directory of the Snakefile


def synthetic_facts(n: int) -> list[dict]:
    return [{"known_id": i, "subject": f"Subject{i}", "attribute": f"Attribute{i}", "template": "{} is located in",
             "prediction": f"Attribute{i}", "prompt": f"Subject{i} is located in", "relation_id": "P17"}
            for i in range(n)]


def _write_table(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"known_id": [0]}), path)


def _outputs(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("output: "):
            out += [re.sub(r" \(.*\)$", "", p.strip()) for p in s[len("output: "):].split(", ")]
    return out


def _dry_run(wd: Path, configfile: Path, profile: str | None) -> tuple[float, str]:
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe) if exe.exists() else "snakemake", "-n", "--snakefile", str(WORKFLOW / "Snakefile"),
           "--directory", str(wd), "--configfile", str(configfile)]
    if profile:
        cmd += ["--profile", str(Path(profile).resolve())]
    env = {**PLACEHOLDER_ENV, **os.environ, "FACTRACE_PLAN_ONLY": "1"}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=WORKFLOW, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return time.monotonic() - t0, proc.stdout + proc.stderr


def footer_scan(root: Path) -> tuple[int, float]:
    import pyarrow.parquet as pq

    t0 = time.monotonic()
    n = 0
    for p in root.rglob("*.parquet"):
        pq.read_metadata(p)
        n += 1
    return n, time.monotonic() - t0


def run(configfile: str, profile: str | None, n_facts: int, shard_size: int, extra_tables: int,
        scratch: Path) -> dict:
    import yaml

    config = load_config(configfile)
    config["facts"].update(path="results/facts/known.json", url="https://example.invalid/known.json",
                           sha256=None, expected_ids=[0, n_facts], shard_size=shard_size, limit=None)
    config["results"] = "results"
    cfg = scratch / "bench.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    facts = scratch / "results" / "facts" / "known.json"
    facts.parent.mkdir(parents=True, exist_ok=True)
    facts.write_text(json.dumps(synthetic_facts(n_facts)))
    os.utime(facts, (time.time() - 3600, time.time() - 3600))

    empty_s, text = _dry_run(scratch, cfg, profile)
    jobs = parse_dry_run(text)
    t0 = time.monotonic()
    now = time.time()
    outputs = [o for o in _outputs(text) if o.startswith("results/")]
    for o in outputs:
        p = scratch / o
        if p.suffix == ".parquet":
            _write_table(p)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("{}\n")
    for i in range(extra_tables):
        _write_table(scratch / "results" / "trace" / "stale" / f"{i // 1000:03d}" / f"layers-{i}.parquet")
    for p in (scratch / "results").rglob("*"):
        if p.is_file() and p != facts:
            os.utime(p, (now, now))
    write_s = time.monotonic() - t0
    tables, scan_s = footer_scan(scratch / "results")
    complete_s, text2 = _dry_run(scratch, cfg, profile)
    left = parse_dry_run(text2)
    return {
        "facts": n_facts, "shard_size": shard_size, "jobs_planned": len(jobs), "tables": tables,
        "dry_run_empty_tree_s": round(empty_s, 1), "dry_run_complete_tree_s": round(complete_s, 1),
        "jobs_left_on_complete_tree": len(left), "footer_scan_s": round(scan_s, 2), "write_tree_s": round(write_s, 1),
    }


def cmd_bench_plan(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="factrace-bench-plan-") as tmp:
        res = run(args.configfile, args.profile, args.facts, args.shard_size, args.extra_tables, Path(tmp))
    print(f"planning {args.configfile} on {args.profile or 'no profile'}: {res['facts']} facts in shards of "
          f"{res['shard_size']}, a results tree of {res['tables']} Parquet tables")
    rows = [("dry run, empty results tree", res["dry_run_empty_tree_s"], f"{res['jobs_planned']} jobs"),
            ("dry run, complete results tree", res["dry_run_complete_tree_s"],
             f"{res['jobs_left_on_complete_tree']} jobs"),
            ("Parquet footers of the tree, read alone", res["footer_scan_s"], f"{res['tables']} tables")]
    width = max(len(r[0]) for r in rows)
    print(f"{'step'.ljust(width)}  {'seconds':>8}  planned")
    for name, s, what in rows:
        print(f"{name.ljust(width)}  {s:8.1f}  {what}")
    print(json.dumps(res))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("bench-plan", help="time Snakemake's planning on a synthetic results tree at scale "
                                          "(a table, then one JSON line)")
    s.add_argument("--configfile", default="config/paper.yaml", help="the config planned (merged over the default config)")
    s.add_argument("--profile", default="profiles/slurm", help="the Snakemake profile planned for")
    s.add_argument("--facts", type=int, default=1209, help="synthetic facts (Known-1000 has 1,209)")
    s.add_argument("--shard-size", type=int, default=152, help="facts per shard (facts.shard_size)")
    s.add_argument("--extra-tables", type=int, default=10000,
                   help="stale Parquet tables in the tree that no rule makes (the footer check reads them)")
    s.set_defaults(func=cmd_bench_plan)
