"""Command-line subcommands of the speech stages: ``register(subparsers)`` adds them to the main CLI.

Each subcommand sets ``func`` to a handler ``handler(args) -> int`` (0 on success). Stage modules are imported
only when a subcommand runs, so registering costs nothing and works when optional backends are absent. Options
that are config values are required (the rules pass them; the schema holds the defaults).
"""

from __future__ import annotations

import argparse


def _tts(a: argparse.Namespace) -> int:
    import json

    from .stages import run_tts

    run_tts(a.prompts, a.out, a.audio_dir, a.backend, seed=a.seed, options=json.loads(a.options),
            melotts_dir=a.melotts_dir)
    return 0


def _asr(a: argparse.Namespace) -> int:
    from .stages import run_asr

    run_asr(a.audio, a.out, a.model, a.wer_threshold, device=a.device)
    return 0


def _align(a: argparse.Namespace) -> int:
    if a.method == "hubert-ctc":
        from .units_stages import run_align_ctc

        if not a.model_dir:
            raise SystemExit("align --method hubert-ctc needs --model-dir (the local hubert-large-ls960-ft files)")
        run_align_ctc(a.audio, a.prompts, a.out, a.model_dir, device=a.device, dtype=a.dtype)
    else:
        from .stages import run_align_offline

        run_align_offline(a.audio, a.onsets, a.prompts, a.out, a.method,
                          **({"model": a.asr_model} if a.asr_model else {}))
    return 0


def _fit_units(a: argparse.Namespace) -> int:
    from .units_stages import run_fit_units

    run_fit_units(a.audio, a.out, k=a.k, seed=a.seed, deltas=not a.no_deltas)
    return 0


def _speech_tokens(a: argparse.Namespace) -> int:
    from .units_stages import run_speech_tokens

    run_speech_tokens(a.audio, a.units, a.out, dedup=a.dedup, backend=a.backend,
                      checkpoints_dir=a.checkpoints_dir, device=a.device)
    return 0


def _token_map(a: argparse.Namespace) -> int:
    from .units_stages import run_token_map

    run_token_map(a.prompts, a.alignment, a.speech_tokens, a.tokenizer_dir, a.model, a.out,
                  add_special_tokens=a.add_special_tokens)
    return 0


def _speech_figures(a: argparse.Namespace) -> int:
    from .units_stages import run_speech_figures

    run_speech_figures(a.audio, a.alignment, a.speech_tokens, a.out_dir, n=a.n, token_map_parquet=a.token_map)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``tts``, ``asr``, ``align``, ``fit-units``, ``speech-tokens``, ``token-map``, ``speech-figures``."""
    p = subparsers.add_parser("tts", help="synthesise prompt/subject/attribute audio for a prompts shard")
    p.add_argument("--prompts", required=True)
    p.add_argument("--out", required=True, help="audio manifest parquet")
    p.add_argument("--audio-dir", required=True)
    p.add_argument("--backend", required=True, choices=["espeak", "melotts"], help="speech.tts.backend")
    p.add_argument("--options", required=True, help="the backend's parameters as JSON (speech.tts.<backend>)")
    p.add_argument("--seed", type=int, required=True, help="seed")
    p.add_argument("--melotts-dir", default=None, help="melotts: the MeloTTS worker's output for the shard")
    p.set_defaults(func=_tts)

    p = subparsers.add_parser("asr", help="transcribe the prompt audio and compute WER")
    p.add_argument("--audio", required=True, help="audio manifest parquet")
    p.add_argument("--out", required=True)
    p.add_argument("--model", required=True, help="local faster-whisper model directory")
    p.add_argument("--wer-threshold", type=float, default=None,
                   help="speech.asr.wer_threshold: drop utterances above this WER (none: keep every one)")
    p.add_argument("--device", required=True, help="speech.asr.device: cpu, cuda or auto")
    p.set_defaults(func=_asr)

    p = subparsers.add_parser("align", help="word alignment of the prompt audio")
    p.add_argument("--audio", required=True, help="audio manifest parquet")
    p.add_argument("--prompts", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--method", required=True,
                   help="speech.alignment.method: hubert-ctc (CTC forced alignment) or an offline method")
    p.add_argument("--asr-model", default=None, help="whisper: speech.asr.model, the faster-whisper model")
    p.add_argument("--onsets", default=None, help="TTS word-onset parquet (offline methods)")
    p.add_argument("--model-dir", default=None, help="hubert-ctc: local facebook/hubert-large-ls960-ft directory")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", help="auto: bfloat16 on GPU, float32 on CPU")
    p.set_defaults(func=_align)

    p = subparsers.add_parser("fit-units", help="fit the mfcc-kmeans speech tokenizer on the prompt audio")
    p.add_argument("--audio", required=True, nargs="+", help="audio manifest parquets")
    p.add_argument("--out", required=True, help=".npz resource")
    p.add_argument("--k", type=int, required=True, help="speech.units.k")
    p.add_argument("--seed", type=int, required=True, help="seed")
    p.add_argument("--no-deltas", action="store_true")
    p.set_defaults(func=_fit_units)

    p = subparsers.add_parser("speech-tokens", help="encode the prompt audio into 25 Hz speech tokens")
    p.add_argument("--audio", required=True)
    p.add_argument("--units", default=None, help="mfcc-kmeans .npz resource")
    p.add_argument("--out", required=True)
    p.add_argument("--backend", required=True, choices=["mfcc-kmeans", "spiritlm"], help="speech.units.backend")
    p.add_argument("--checkpoints-dir", default=None, help="spiritlm: speech.units.checkpoints_dir")
    p.add_argument("--device", default="auto")
    p.add_argument("--dedup", action=argparse.BooleanOptionalAction, required=True, help="speech.units.dedup")
    p.set_defaults(func=_speech_tokens)

    p = subparsers.add_parser("token-map", help="map text tokens to speech-token ranges")
    p.add_argument("--prompts", required=True)
    p.add_argument("--alignment", required=True)
    p.add_argument("--speech-tokens", required=True)
    p.add_argument("--tokenizer-dir", required=True)
    p.add_argument("--model", required=True, help="model name written in the rows")
    p.add_argument("--out", required=True)
    p.add_argument("--add-special-tokens", action="store_true")
    p.set_defaults(func=_token_map)

    p = subparsers.add_parser("speech-figures", help="Figure-3-style alignment plots for a few facts")
    p.add_argument("--audio", required=True)
    p.add_argument("--alignment", required=True)
    p.add_argument("--speech-tokens", required=True)
    p.add_argument("--token-map", default=None)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--n", type=int, required=True, help="figures.spectrograms")
    p.set_defaults(func=_speech_figures)
