"""Subcommands of the speech-LM stage: ``build-speechlm`` and ``modality-gap``.

``register(subparsers)`` adds them to the main CLI (``factrace.cli._register_optional``); the handlers import
their modules only when run.
"""

from __future__ import annotations

import argparse
import json


def _build(a: argparse.Namespace) -> int:
    from .offline import (
        HELD_OUT,
        MAIN,
        TRAIN,
        UNHEARD,
        Rendering,
        TrainSettings,
        build_offline_speechlm,
        parse_renderings,
    )

    settings = TrainSettings(steps=a.steps, seed=a.seed, batch=a.batch, threads=a.threads)
    unheard = None if a.unheard == "none" else (Rendering.parse(a.unheard) if a.unheard else UNHEARD)
    build_offline_speechlm(
        a.facts, a.units, a.out_dir,
        renderings=parse_renderings(a.renderings) or list(TRAIN),
        seed=a.seed, steps=a.steps,
        held_out=Rendering.parse(a.held_out) if a.held_out else HELD_OUT,
        unheard=unheard,
        main=Rendering.parse(a.main) if a.main else MAIN,
        k=a.k, settings=settings, eval_json=a.eval_json, max_new_tokens=a.max_new_tokens,
    )
    return 0


def _gap(a: argparse.Namespace) -> int:
    from .. import io
    from ..models.load import ModelSpec, load_model
    from ..provenance import Provenance, config_hash
    from .gap import modality_gap

    spec = ModelSpec.from_config(a.model, json.loads(a.model_spec))
    loaded = load_model(spec)
    prompts = io.read_tables(a.prompts, "prompts")
    known = None
    if a.filters:
        filt = io.read_tables(a.filters, "filter")
        kept = filt[filt["kept"]]
        mods = set(kept["modality"])
        # facts kept in every modality present in the filter tables
        sets = [set(kept.loc[kept["modality"] == m, "known_id"]) for m in mods]
        known = set.intersection(*sets) if sets else set()
    df = modality_gap(loaded, prompts, a.speech_tokens, a.token_map, a.model, known_ids=known)
    prov = Provenance(stage="modality_gap", config_hash=config_hash({"filters": bool(a.filters)}),
                      model_id=a.model, weights_sha256=loaded.weights_sha256)
    io.write_table(df, a.out, None, prov)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build-speechlm", help="build the offline speech LM from the offline corpus")
    p.add_argument("--facts", required=True, help="facts JSON (Known-1000 format)")
    p.add_argument("--units", default=None, help="mfcc-kmeans .npz (default: fit one, saved as OUT_DIR/units.npz)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--renderings", default=None,
                   help="trained renderings: 'voice:rate:pitch,...' or a JSON list (default: offline.TRAIN)")
    p.add_argument("--held-out", default=None, help="held-out rendering voice:rate:pitch (default: offline.HELD_OUT)")
    p.add_argument("--unheard", default=None, help="unheard-voice rendering, or 'none' (default: offline.UNHEARD)")
    p.add_argument("--main", default=None, help="the rendering traced later (default en-us:160:50)")
    p.add_argument("--k", type=int, default=100, help="units to fit when --units is not given")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=4)
    p.add_argument("--eval-json", default=None, help="also write the evaluation here")
    p.set_defaults(func=_build)

    p = subparsers.add_parser("modality-gap", help="per-layer cosine / Euclidean gap of text vs speech states")
    p.add_argument("--model", required=True)
    p.add_argument("--model-spec", required=True, help="the model's config entry as JSON")
    p.add_argument("--prompts", nargs="+", required=True)
    p.add_argument("--speech-tokens", nargs="+", required=True)
    p.add_argument("--token-map", nargs="+", required=True)
    p.add_argument("--filters", nargs="*", default=None, help="filter tables: only facts kept in every modality")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_gap)
