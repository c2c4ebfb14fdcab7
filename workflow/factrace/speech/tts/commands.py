"""Command-line subcommand of the TTS stage: ``register(subparsers)`` adds it to the main CLI.

Each subcommand sets ``func`` to a handler ``handler(args) -> int`` (0 on success). Stage modules are imported
only when a subcommand runs, so registering costs nothing and works when optional backends are absent. Options
that are config values are required (the rules pass them; the schema holds the defaults).
"""

from __future__ import annotations

import argparse


def _tts(a: argparse.Namespace) -> int:
    import json

    from factrace.speech.tts.stage import run_tts

    run_tts(a.prompts, a.out, a.audio_dir, a.backend, seed=a.seed, options=json.loads(a.options),
            melotts_dir=a.melotts_dir)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tts``."""
    p = subparsers.add_parser("tts", help="synthesise prompt/subject/attribute audio for a prompts shard")
    p.add_argument("--prompts", required=True, help="the shard's `prompts` parquet")
    p.add_argument("--out", required=True, help="audio manifest parquet")
    p.add_argument("--audio-dir", required=True, help="directory for the .wav files (<known_id>_<field>.wav)")
    p.add_argument("--backend", required=True, choices=["espeak", "melotts"], help="speech.tts.backend")
    p.add_argument("--options", required=True, help="the backend's parameters as JSON (speech.tts.<backend>)")
    p.add_argument("--seed", type=int, required=True, help="seed")
    p.add_argument("--melotts-dir", default=None, help="melotts: the MeloTTS worker's output for the shard")
    p.set_defaults(func=_tts)
