"""Subcommands that build the offline speech LM: ``build-speechlm-backbone`` (stage 1) and ``build-speechlm`` (stage 2).

``register(subparsers)`` adds them to the main CLI (:mod:`factrace.cli`); the handlers import their modules only
when run. Options that are config values have no default here (the rules pass them; the schema holds defaults);
the build's own knobs default to the dataclasses of :mod:`factrace.models.offline_speechlm.build` and ``.train``.
"""

from __future__ import annotations

import argparse


def _given(a: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` given on the command line (the others keep their dataclass defaults)."""
    return {n: getattr(a, n) for n in names if getattr(a, n) is not None}


def _eval_settings(a: argparse.Namespace):
    from factrace.core.noise_rule import NoiseRule
    from factrace.models.offline_speechlm.build import EvalSettings

    return EvalSettings(noise=NoiseRule.from_args(a),
                        subject_margin=getattr(a, "subject_margin", None),
                        seed=a.seed, samples=a.samples, **_given(a, "draws", "max_new_tokens"))


def _build_backbone(a: argparse.Namespace) -> int:
    from factrace.models.offline_speechlm.build import (
        BACKBONE_BATCH,
        Architecture,
        TrainSettings,
        build_backbone,
    )

    extra = None if a.extra_facts == "none" else a.extra_facts
    build_backbone(
        a.facts, a.out_dir, extra_json=extra,
        settings=TrainSettings(steps=a.steps, seed=a.seed, threads=a.threads, batch=a.batch or BACKBONE_BATCH),
        arch=Architecture(hidden=a.hidden, intermediate=a.intermediate, layers=a.layers, **_given(a, "heads")),
        max_extra=a.max_extra, ev_settings=_eval_settings(a), eval_json=a.eval_json,
    )
    return 0


def _build(a: argparse.Namespace) -> int:
    from factrace.models.offline_speechlm.build import (
        HELD_OUT,
        MAIN,
        UNHEARD,
        Rendering,
        SpeechData,
        SpeechMix,
        TrainSettings,
        build_offline_speechlm,
        renderings_of,
    )

    unheard = None if a.unheard == "none" else (Rendering.parse(a.unheard) if a.unheard else UNHEARD)
    data = SpeechData(
        renderings=renderings_of(a.renderings),
        held_out=Rendering.parse(a.held_out) if a.held_out else HELD_OUT,
        unheard=unheard, main=Rendering.parse(a.main) if a.main else MAIN,
        extra_renderings=a.extra_renderings, text_only_fraction=a.text_only_fraction,
        mix=SpeechMix(**_given(a, "trainable_layers")),
    )
    build_offline_speechlm(
        a.facts, a.units, a.backbone, a.out_dir, data=data,
        settings=TrainSettings(steps=a.steps, seed=a.seed, threads=a.threads, **_given(a, "batch", "lr")),
        k=a.k, ev_settings=_eval_settings(a), eval_json=a.eval_json,
    )
    return 0


def _sweep(a: argparse.Namespace) -> int:
    from factrace.models.offline_speechlm.sweep import main_variant

    return main_variant(a)


def _sweep_table(a: argparse.Namespace) -> int:
    from factrace.models.offline_speechlm.sweep import main_table

    return main_table(a)


def _noise_args(p: argparse.ArgumentParser, speech: bool) -> None:
    """eval.json's noise, as every build measures it: the noise rule, the samples, (speech) the subject margin."""
    from factrace.core.noise_rule import add_noise_rule_args

    add_noise_rule_args(p)  # each modality's multiplier by the noise rule
    if speech:
        p.add_argument("--subject-margin", type=int, required=True,
                       help="tracing.subject_margin_s2t: units added on each side of the subject's speech range")
    p.add_argument("--samples", type=int, required=True, help="tracing.samples: noise samples per fact (eval.json)")


def _eval_args(p: argparse.ArgumentParser, speech: bool) -> None:
    _noise_args(p, speech)
    p.add_argument("--draws", type=int, default=None, help="random-unit subject ablation draws (EvalSettings)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="greedy tokens per answer (EvalSettings)")
    p.add_argument("--eval-json", default=None, help="also write the evaluation here")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build-speechlm-backbone",
                              help="stage 1 of the offline speech LM: its text backbone (loader hf)")
    p.add_argument("--facts", required=True, help="facts JSON (Known-1000 format): the traced facts")
    p.add_argument("--extra-facts", required=True,
                   help="speech.speechlm.extra_facts: extra (subject, attribute) pairs per template, or 'none'")
    p.add_argument("--max-extra", type=int, default=None, help="at most N extra facts per template")
    p.add_argument("--out-dir", required=True, help="the checkpoint directory to write (the text backbone)")
    p.add_argument("--steps", type=int, required=True, help="speech.speechlm.backbone_steps")
    p.add_argument("--hidden", type=int, required=True, help="models.<backbone>.hidden")
    p.add_argument("--intermediate", type=int, required=True, help="models.<backbone>.intermediate")
    p.add_argument("--layers", type=int, required=True, help="models.<backbone>.n_layers")
    p.add_argument("--seed", type=int, required=True, help="seed")
    p.add_argument("--batch", type=int, default=None, help="sequences per step (offline.BACKBONE_BATCH)")
    p.add_argument("--heads", type=int, default=None, help="attention heads (train.Architecture)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training")
    _eval_args(p, speech=False)
    p.set_defaults(func=_build_backbone)

    p = subparsers.add_parser("build-speechlm",
                              help="stage 2 of the offline speech LM: the backbone adapted to speech (loader spiritlm)")
    p.add_argument("--facts", required=True, help="facts JSON (Known-1000 format)")
    p.add_argument("--backbone", required=True, help="the stage-1 checkpoint (build-speechlm-backbone)")
    p.add_argument("--units", default=None, help="mfcc-kmeans .npz (default: fit one, saved as OUT_DIR/units.npz)")
    p.add_argument("--out-dir", required=True, help="the checkpoint directory to write (the speech LM)")
    p.add_argument("--renderings", default=None,
                   help="trained renderings: 'voice:rate:pitch,...' or a JSON list (default: corpus.TRAIN)")
    p.add_argument("--held-out", default=None, help="held-out rendering voice:rate:pitch (default: corpus.HELD_OUT)")
    p.add_argument("--unheard", default=None, help="unheard-voice rendering, or 'none' (default: corpus.UNHEARD)")
    p.add_argument("--main", default=None, help="the rendering traced later (default en-us:160:50)")
    p.add_argument("--extra-renderings", type=int, required=True,
                   help="speech.speechlm.extra_renderings: the extra facts are spoken in the first N renderings")
    p.add_argument("--text-only-fraction", type=float, required=True,
                   help="speech.speechlm.text_only_fraction: the share of traced facts learnt in text only")
    p.add_argument("--trainable-layers", type=int, default=None,
                   help="speech.speechlm.trainable_layers: train only the new embeddings and the N lowest layers")
    p.add_argument("--k", type=int, default=None, help="speech.units.k: units to fit when --units is not given")
    p.add_argument("--steps", type=int, required=True, help="speech.speechlm.steps")
    p.add_argument("--seed", type=int, required=True, help="seed")
    p.add_argument("--batch", type=int, default=None, help="sequences per step (train.TrainSettings)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (train.TrainSettings)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training")
    _eval_args(p, speech=True)
    p.set_defaults(func=_build)

    p = subparsers.add_parser("speechlm-sweep",
                              help="one variant of the offline speech LM's build, evaluated (a row of make sweep)")
    p.add_argument("--variants", required=True, help="speech.speechlm.sweep: TSV of variants")
    p.add_argument("--name", required=True, help="the variant to build (its name in --variants)")
    p.add_argument("--base", required=True,
                   help="JSON: the config's values of the variant's empty cells (sweep.BASE: layers, steps, seed, ...)")
    p.add_argument("--facts", required=True, help="facts JSON (Known-1000 format): the traced facts")
    p.add_argument("--extra-facts", required=True, help="speech.speechlm.extra_facts")
    p.add_argument("--units", required=True, help="the workflow's mfcc-kmeans .npz (rule fit_units)")
    p.add_argument("--extra-renderings", type=int, required=True, help="speech.speechlm.extra_renderings")
    _noise_args(p, speech=True)
    p.add_argument("--work", required=True, help="directory for the variant's two checkpoints")
    p.add_argument("--out", required=True, help="the variant's row (TSV)")
    p.set_defaults(func=_sweep)

    p = subparsers.add_parser("speechlm-sweep-table", help="the sweep's rows as one table, printed with a JSON line")
    p.add_argument("--rows", nargs="+", required=True, help="rows written by speechlm-sweep")
    p.add_argument("--variants", default=None, help="the variants TSV: order of the table's rows")
    p.add_argument("--out", required=True, help="the table (TSV)")
    p.set_defaults(func=_sweep_table)
