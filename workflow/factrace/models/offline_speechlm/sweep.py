"""Carry-over of the offline speech LM against its build settings: a measured table (``factrace speechlm-sweep``).

Each variant (a row of a TSV: name, layers, hidden, intermediate, backbone_steps, steps, text_only_fraction,
trainable_layers, align_weight, align_layer, seed; empty cells take the build's defaults) builds both stages with
:func:`factrace.models.offline_speechlm.build.build_backbone` and :func:`~.build.build_offline_speechlm`, exactly
as the workflow does, and reports its ``eval.json`` summary: text and speech accuracy on heard facts, carry-over
(speech accuracy on text-only facts the backbone knows) beside its chance levels, the never-heard condition and
the noise ratios. Backbones are shared between variants with the same architecture, steps and seed; the speech
corpus (synthesis and units, the same for every variant) is computed once. Prints a table and a final JSON line.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    name: str
    layers: int = 8
    hidden: int = 128
    intermediate: int = 384
    backbone_steps: int = 600
    steps: int = 800
    text_only_fraction: float = 0.5
    trainable_layers: int | None = None
    align_weight: float = 0.0
    align_layer: int = 1
    seed: int = 1


def read_variants(path: str | Path) -> list[Variant]:
    """Variants from a TSV with a header of :class:`Variant`'s field names (empty cells: the defaults)."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    known = {f.name: f for f in fields(Variant)}
    unknown = sorted(set(df.columns) - set(known))
    if unknown or "name" not in df.columns:
        raise ValueError(f"{path}: columns must be among {sorted(known)} with 'name' (unknown: {unknown})")
    out = []
    for i, row in enumerate(df.to_dict("records"), start=2):
        kw: dict[str, Any] = {}
        for k, v in row.items():
            if v == "":
                continue
            typ = {"name": str, "text_only_fraction": float, "align_weight": float}.get(k, int)
            try:
                kw[k] = typ(v)
            except ValueError:
                raise ValueError(f"{path}, line {i}: {k}={v!r} is not a {typ.__name__}") from None
        out.append(Variant(**kw))
    return out


def run_variant(v: Variant, facts_json: str | Path, extra_json: str | Path, units_npz: str | Path | None, k: int,
                work: Path, extra_renderings: int, noise_multiplier: float, samples: int,
                subject_margin: int) -> dict[str, Any]:
    """Build one variant's two stages under ``work`` and return its row."""
    from factrace.models.offline_speechlm import build as B
    from factrace.models.offline_speechlm import corpus as C
    from factrace.models.offline_speechlm.train import Architecture, SpeechMix, TrainSettings

    es = B.EvalSettings(noise_multiplier=noise_multiplier, noise_multiplier_s2t=None,
                        subject_margin=subject_margin, seed=v.seed, samples=samples)
    bb = work / f"backbone-L{v.layers}-h{v.hidden}-i{v.intermediate}-s{v.backbone_steps}-seed{v.seed}"
    t0 = time.monotonic()
    if not (bb / "facts.parquet").exists():
        B.build_backbone(facts_json, bb, extra_json, TrainSettings(steps=v.backbone_steps, seed=v.seed,
                                                                   batch=B.BACKBONE_BATCH),
                         Architecture(v.hidden, v.intermediate, v.layers), es)
    data = B.SpeechData(extra_renderings=extra_renderings, text_only_fraction=v.text_only_fraction,
                        mix=SpeechMix(trainable_layers=v.trainable_layers, align_weight=v.align_weight,
                                      align_layer=v.align_layer))
    cache = work / "speech_corpus.parquet"  # the same synthesis and units for every variant
    compute = C.speech_corpus

    def cached(facts: pd.DataFrame, plan: Any, units_model: Any) -> pd.DataFrame:
        if cache.exists():
            return pd.read_parquet(cache)
        corpus = compute(facts, plan, units_model)
        corpus.to_parquet(cache)
        return corpus

    C.speech_corpus = cached
    try:
        ev = B.build_offline_speechlm(facts_json, units_npz, bb, work / f"speechlm-{v.name}", data,
                                      B.TrainSettings(steps=v.steps, seed=v.seed), es, k=k)
    finally:
        C.speech_corpus = compute
    s, co = ev["summary"], ev["carry_over"]
    return {**{f.name: getattr(v, f.name) for f in fields(Variant)},
            "text": s["text"], "speech_heard": s["speech_main"], "speech_held_out": s["speech_held_out"],
            "carry_over": s["carry_over_speech"], "carry_over_n": s["carry_over_n"],
            "carry_over_held_out": (co.get("speech_held_out") or {}).get("accuracy"),
            "chance_template_prior": s["carry_over_template_prior"],
            "chance_random_units": s["carry_over_random_units"],
            "never_heard": ev["never_heard"]["speech"]["accuracy"], "never_heard_n": ev["never_heard"]["speech"]["n"],
            "random_units_heard": s["random_units"], "swap_followed_heard": s["swap_followed"],
            "ratio_t2t_3std": s["ratio_t2t"], "ratio_s2t_3std": s["ratio_s2t"],
            "build_s": round(time.monotonic() - t0)}


def sweep(variants: list[Variant], out: str | Path, **kw: Any) -> pd.DataFrame:
    """Run every variant and write the table ``out`` (TSV). Rows are kept in ``work/rows.tsv`` beside it as they
    finish: a rerun after an interruption builds only the variants not there (a changed variant: delete its
    row)."""
    out = Path(out)
    work = out.parent / "work"
    work.mkdir(parents=True, exist_ok=True)
    progress = work / "rows.tsv"
    done = pd.read_csv(progress, sep="\t") if progress.exists() else pd.DataFrame()
    for i, v in enumerate(variants, start=1):
        if len(done) and v.name in set(done["name"]):
            log.info("variant %d/%d %s: already built (%s)", i, len(variants), v.name, progress)
            continue
        log.info("variant %d/%d: %s", i, len(variants), v)
        row = run_variant(v, work=work, **kw)
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        done.to_csv(progress, sep="\t", index=False)
    names = [v.name for v in variants]
    table = done[done["name"].isin(names)].set_index("name").loc[names].reset_index()
    table.to_csv(out, sep="\t", index=False)
    return table


def main(args: Any) -> int:
    variants = read_variants(args.variants)
    table = sweep(variants, args.out, facts_json=args.facts, extra_json=args.extra_facts, units_npz=args.units,
                  k=args.k, extra_renderings=args.extra_renderings, noise_multiplier=args.noise_multiplier,
                  samples=args.samples, subject_margin=args.subject_margin)
    cols = ["name", "layers", "steps", "trainable_layers", "align_weight", "seed", "text", "speech_heard",
            "carry_over", "carry_over_n", "chance_template_prior", "chance_random_units", "never_heard"]
    print(table[cols].to_string(index=False))
    best = table.loc[table["carry_over"].idxmax()]
    print(json.dumps({"variants": len(table), "best": str(best["name"]), "best_carry_over": float(best["carry_over"]),
                      "best_n": int(best["carry_over_n"]), "table": str(args.out)}))
    return 0
