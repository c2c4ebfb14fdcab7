"""Command-line subcommand of the ASR check: ``register(subparsers)`` adds it to the main CLI.

Each subcommand sets ``func`` to a handler ``handler(args) -> int`` (0 on success). Stage modules are imported
only when a subcommand runs, so registering costs nothing and works when optional backends are absent. Options
that are config values are required (the rules pass them; the schema holds the defaults).
"""

from __future__ import annotations

import argparse


def _asr(a: argparse.Namespace) -> int:
    from factrace.speech.asr.stage import run_asr

    run_asr(a.audio, a.out, a.model, a.wer_threshold, device=a.device)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``asr``."""
    p = subparsers.add_parser("asr", help="transcribe the prompt audio and compute WER")
    p.add_argument("--audio", required=True, help="audio manifest parquet")
    p.add_argument("--out", required=True, help="the `asr` parquet to write (transcripts and WER)")
    p.add_argument("--model", required=True, help="local faster-whisper model directory")
    p.add_argument("--wer-threshold", type=float, default=None,
                   help="speech.asr.wer_threshold: drop utterances above this WER (none: keep every one)")
    p.add_argument("--device", required=True, help="speech.asr.device: cpu, cuda or auto")
    p.set_defaults(func=_asr)
