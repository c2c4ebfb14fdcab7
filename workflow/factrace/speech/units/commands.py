"""Command-line subcommands of the speech-token stages: ``register(subparsers)`` adds them to the main CLI.

Each subcommand sets ``func`` to a handler ``handler(args) -> int`` (0 on success). Stage modules are imported
only when a subcommand runs, so registering costs nothing and works when optional backends are absent. Options
that are config values are required (the rules pass them; the schema holds the defaults).
"""

from __future__ import annotations

import argparse


def _fit_units(a: argparse.Namespace) -> int:
    from factrace.speech.units.stages import run_fit_units

    run_fit_units(a.audio, a.out, k=a.k, seed=a.seed, deltas=not a.no_deltas)
    return 0


def _speech_tokens(a: argparse.Namespace) -> int:
    from factrace.speech.units.stages import run_speech_tokens

    run_speech_tokens(a.audio, a.units, a.out, dedup=a.dedup, backend=a.backend,
                      checkpoints_dir=a.checkpoints_dir, device=a.device)
    return 0


def _token_map(a: argparse.Namespace) -> int:
    from factrace.speech.units.stages import run_token_map

    run_token_map(a.prompts, a.alignment, a.speech_tokens, a.tokenizer_dir, a.model, a.out,
                  add_special_tokens=a.add_special_tokens)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fit-units``, ``speech-tokens`` and ``token-map``."""
    p = subparsers.add_parser("fit-units", help="fit the mfcc-kmeans speech tokenizer on the prompt audio")
    p.add_argument("--audio", required=True, nargs="+", help="audio manifest parquets")
    p.add_argument("--out", required=True, help=".npz resource")
    p.add_argument("--k", type=int, required=True, help="speech.units.k")
    p.add_argument("--seed", type=int, required=True, help="seed")
    p.add_argument("--no-deltas", action="store_true", help="MFCC features without their delta features")
    p.set_defaults(func=_fit_units)

    p = subparsers.add_parser("speech-tokens", help="encode the prompt audio into 25 Hz speech tokens")
    p.add_argument("--audio", required=True, help="audio manifest parquet")
    p.add_argument("--units", default=None, help="mfcc-kmeans .npz resource")
    p.add_argument("--out", required=True, help="the speech-tokens parquet to write")
    p.add_argument("--backend", required=True, choices=["mfcc-kmeans", "spiritlm"], help="speech.units.backend")
    p.add_argument("--checkpoints-dir", default=None, help="spiritlm: speech.units.checkpoints_dir")
    p.add_argument("--device", default="auto", help="spiritlm: torch device for the speech encoder (auto: cuda when available)")
    p.add_argument("--dedup", action=argparse.BooleanOptionalAction, required=True, help="speech.units.dedup")
    p.set_defaults(func=_speech_tokens)

    p = subparsers.add_parser("token-map", help="map text tokens to speech-token ranges")
    p.add_argument("--prompts", required=True, help="the shard's `prompts` parquet")
    p.add_argument("--alignment", required=True, help="the shard's `alignment` parquet (word boundaries)")
    p.add_argument("--speech-tokens", required=True, help="the shard's speech-tokens parquet")
    p.add_argument("--tokenizer-dir", required=True, help="directory of the model's text tokenizer")
    p.add_argument("--model", required=True, help="model name written in the rows")
    p.add_argument("--out", required=True, help="the token-map parquet to write")
    p.add_argument("--add-special-tokens", action="store_true",
                   help="index text tokens as the tokenizer splits the prompt with its special tokens (e.g. BOS)")
    p.set_defaults(func=_token_map)
