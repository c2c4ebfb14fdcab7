"""Command line: ``factrace <command>``. Each Snakemake rule calls one command.

The commands live with their stage (each module in :data:`COMMAND_MODULES` has ``register(subparsers)``); this
module only builds the parser from them and runs the chosen command. Options that are config values have no
default of their own: the rules pass them, and the config schema holds the defaults.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

log = logging.getLogger("factrace")

#: ``factrace --help``'s description: plain text (the module docstring is for Sphinx, with its markup).
DESCRIPTION = ("Causal tracing of factual recall in speech-text language models. Each Snakemake rule calls one "
               "command; `factrace <command> --help` lists its options. Options that are config values have no "
               "default of their own: the rules pass them, and the config schema holds the defaults.")

COMMAND_MODULES = (
    "factrace.facts.commands",  # download-facts, validate-facts, shard
    "factrace.checks.integrity",  # check-facts, check-tables
    "factrace.models.commands",  # convert-model
    "factrace.models.fetch",  # fetch-checkpoints
    "factrace.models.offline_speechlm.commands",  # build-speechlm-backbone, build-speechlm
    "factrace.speech.tts.commands",  # tts
    "factrace.speech.asr.commands",  # asr
    "factrace.speech.align.commands",  # align, align-compare
    "factrace.speech.units.commands",  # fit-units, speech-tokens, token-map
    "factrace.analysis.figures.commands",  # speech-figures, wer-summary
    "factrace.filtering.commands",  # filter
    "factrace.tracing.commands",  # noise-scale, trace
    "factrace.gap.commands",  # modality-gap
    "factrace.analysis.commands",  # aie, compare, qc, figure ..., summarize
    "factrace.reporting.commands",  # report-tables, report-images
    "factrace.checks.tables",  # merge, provenance
    "factrace.checks.precision",  # dtype-compare
    "factrace.planning.commands",  # estimate, bench tracing
    "factrace.planning.plan",  # plan
    "factrace.planning.bench_plan",  # bench-plan
    "factrace.planning.timings",  # timings
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="factrace", description=DESCRIPTION)
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages (tracebacks of handled errors too)")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return p


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", "tracing"]:  # the benchmark parses its own options
        _logging(False)
        from factrace.planning.bench_tracing import main as bench_main

        bench_main(argv[2:])
        return 0
    args = build_parser().parse_args(argv)
    _logging(args.verbose)
    from factrace.core.contracts import ContractError
    from factrace.facts.known import FactsError

    try:
        args.func(args)
    except (FactsError, ContractError) as err:  # bad input: the message names the file, the row and the fix
        log.debug("traceback", exc_info=True)
        raise SystemExit(f"factrace {args.command}: {err}") from err
    except (FileNotFoundError, IsADirectoryError) as err:  # a path given to the command (or made from one)
        log.debug("traceback", exc_info=True)
        what = "no such file" if isinstance(err, FileNotFoundError) else "is a directory, not a file"
        _fail(args.command, err.filename, what, "check the path given to the command or the config")
    except Exception as err:
        if not _is_arrow_invalid(err):
            raise
        log.debug("traceback", exc_info=True)
        _fail(args.command, None, f"not a readable Parquet/Arrow file ({err})",
              "give a .parquet file written by factrace, or rebuild it by rerunning the workflow")
    return 0


def _is_arrow_invalid(err: BaseException) -> bool:
    """Whether ``err`` is pyarrow's ArrowInvalid (pyarrow imported only when a command failed)."""
    try:
        from pyarrow import ArrowInvalid
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return False
    return isinstance(err, ArrowInvalid)


def _fail(command: str, filename: object, what: str, fix: str) -> None:
    """Exit status 2 with one line: ``factrace <command>: <file>: <what> (<fix>)``."""
    where = f"{filename}: " if filename is not None else ""
    print(f"factrace {command}: {where}{what} ({fix})", file=sys.stderr)
    raise SystemExit(2)


if __name__ == "__main__":
    raise SystemExit(main())
