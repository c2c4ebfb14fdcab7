"""Command-line subcommands that draw the speech figures (the speech stages' own are in
:mod:`factrace.speech`): ``register(subparsers)`` adds them to the main CLI.

Each subcommand sets ``func`` to a handler ``handler(args) -> int`` (0 on success). Stage modules are imported
only when a subcommand runs, so registering costs nothing and works when optional backends are absent. Options
that are config values are required (the rules pass them; the schema holds the defaults).
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def _speech_figures(a: argparse.Namespace) -> int:
    from factrace.analysis.figures.speech import run_speech_figures

    run_speech_figures(a.audio, a.alignment, a.speech_tokens, a.out_dir, n=a.n, token_map_parquet=a.token_map)
    return 0


def cmd_wer_summary(args: argparse.Namespace) -> None:
    from factrace.analysis.figures.speech import wer_histogram
    from factrace.core import io
    from factrace.speech.asr.quality import wer_summary

    asr = io.read_tables(args.asr, "asr")
    summary = wer_summary(asr)
    io.write_json(summary, args.out)
    wer_histogram(asr, args.figure)
    log.info("WER: %s", summary)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``speech-figures`` and ``wer-summary``."""
    p = subparsers.add_parser("speech-figures", help="Figure-3-style alignment plots for a few facts")
    p.add_argument("--audio", required=True, help="audio manifest parquet")
    p.add_argument("--alignment", required=True, help="`alignment` parquet (word boundaries)")
    p.add_argument("--speech-tokens", required=True, help="speech-tokens parquet")
    p.add_argument("--token-map", default=None, help="token-map parquet: marks the text tokens' speech ranges too")
    p.add_argument("--out-dir", required=True, help="directory for the figures")
    p.add_argument("--n", type=int, required=True, help="figures.spectrograms")
    p.set_defaults(func=_speech_figures)

    s = subparsers.add_parser("wer-summary", help="overall WER of the ASR check and its histogram")
    s.add_argument("--asr", nargs="+", required=True, help="`asr` parquets (one per shard)")
    s.add_argument("--out", required=True, help="the WER summary JSON to write")
    s.add_argument("--figure", required=True, help="the WER histogram (PNG; a PDF is written beside it)")
    s.set_defaults(func=cmd_wer_summary)
