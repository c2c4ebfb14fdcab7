"""Command-line subcommands of the alignment stage: ``register(subparsers)`` adds them to the main CLI.

Each subcommand sets ``func`` to a handler ``handler(args) -> int`` (0 on success). Stage modules are imported
only when a subcommand runs, so registering costs nothing and works when optional backends are absent. Options
that are config values are required (the rules pass them; the schema holds the defaults).
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def _align(a: argparse.Namespace) -> int:
    if a.method == "hubert-ctc":
        from factrace.speech.align.stage import run_align_ctc

        if not a.model_dir:
            raise SystemExit("align --method hubert-ctc needs --model-dir (the local hubert-large-ls960-ft files)")
        run_align_ctc(a.audio, a.prompts, a.out, a.model_dir, device=a.device, dtype=a.dtype)
    else:
        from factrace.speech.align.stage import run_align_offline

        run_align_offline(a.audio, a.onsets, a.prompts, a.out, a.method,
                          **({"model": a.asr_model} if a.asr_model else {}))
    return 0


def cmd_align_compare(args: argparse.Namespace) -> None:
    from factrace.core import io
    from factrace.speech.align.quality import onset_disagreement

    table = onset_disagreement(io.read_tables(args.reference, "alignment"), io.read_tables(args.others, "alignment"))
    with io.atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    log.info("boundary disagreement:\n%s", table.to_string(index=False))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``align`` and ``align-compare``."""
    p = subparsers.add_parser("align", help="word alignment of the prompt audio")
    p.add_argument("--audio", required=True, help="audio manifest parquet")
    p.add_argument("--prompts", required=True, help="the shard's `prompts` parquet")
    p.add_argument("--out", required=True, help="the `alignment` parquet to write")
    p.add_argument("--method", required=True,
                   help="speech.alignment.method: hubert-ctc (CTC forced alignment) or an offline method")
    p.add_argument("--asr-model", default=None, help="whisper: speech.asr.model, the faster-whisper model")
    p.add_argument("--onsets", default=None, help="TTS word-onset parquet (offline methods)")
    p.add_argument("--model-dir", default=None, help="hubert-ctc: local facebook/hubert-large-ls960-ft directory")
    p.add_argument("--device", default="auto", help="hubert-ctc: torch device (auto: cuda when available)")
    p.add_argument("--dtype", default="auto", help="auto: bfloat16 on GPU, float32 on CPU")
    p.set_defaults(func=_align)

    s = subparsers.add_parser("align-compare", help="word-onset disagreement of alignment methods vs the synthesiser")
    s.add_argument("--reference", nargs="+", required=True, help="the synthesiser's word-onset parquets")
    s.add_argument("--others", nargs="+", required=True, help="`alignment` parquets of the methods compared")
    s.add_argument("--out", required=True, help="the TSV to write (per method: onset disagreement, ms)")
    s.set_defaults(func=cmd_align_compare)
