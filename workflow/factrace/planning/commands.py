"""Subcommands of planning: ``estimate`` (cells, FLOPs and GPU-hours of a config, from the cost model) and
``bench tracing`` (the engine against the reference path; it parses its own options, see :mod:`factrace.cli`)."""

from __future__ import annotations

import argparse
import json


def cmd_estimate(args: argparse.Namespace) -> None:
    from factrace.core.config import load_config
    from factrace.planning.estimate import estimate_table, format_table, totals

    config = load_config(args.configfile)
    rows = estimate_table(config)
    util = config["resources"]["trace"]["utilisation"]
    print(f"cost of tracing {args.configfile} (dense bf16 peak x utilisation {util}; assumptions in "
          "factrace/planning/estimate.py)")
    print(format_table(rows))
    print(json.dumps(totals(rows)))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("estimate", help="cells, FLOPs and GPU-hours of a config, engine vs reference")
    s.add_argument("--configfile", required=True, help="the config file (merged over the default config)")
    s.set_defaults(func=cmd_estimate)

    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench", required=True)
    bench.add_parser("tracing", help="engine vs reference on the offline model (a table, then one JSON line); "
                     "`factrace bench tracing --help` for its options")
