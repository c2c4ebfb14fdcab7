"""Carry-over of the offline speech LM against its build settings: a measured table (``factrace speechlm-sweep``).

Each variant (a row of a TSV: name, layers, hidden, intermediate, backbone_steps, steps, text_only_fraction,
trainable_layers, align_weight, align_layer, seed, the data mix, arithmetic; empty cells take the build's defaults)
builds both stages with
:func:`factrace.models.offline_speechlm.build.build_backbone` and :func:`~.build.build_offline_speechlm`, exactly
as the workflow does, and reports its ``eval.json`` summary: text and speech accuracy on heard facts, carry-over
(speech accuracy on text-only facts the backbone knows) beside its chance levels, the never-heard condition and
the noise ratios. ``arithmetic`` names a CPU code path (:mod:`factrace.core.arithmetic`), applied before the
variant's process computes anything: the same build on another path measures what a rebuild on another machine
moves. One job per variant (rule ``speechlm_sweep_variant``), then one table (rule ``speechlm_sweep``,
``factrace speechlm-sweep-table``), which prints it and a final JSON line.
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


MIX = ("text_fraction", "s2t_fraction", "interleaved_fraction", "prefix_fraction", "transcript_fraction")


#: The variant fields that the workflow's config sets (rule speechlm_sweep_variant passes them as ``--base``).
BASE = ("layers", "hidden", "intermediate", "backbone_steps", "steps", "text_only_fraction", "trainable_layers",
        "seed")


@dataclass(frozen=True)
class Variant:
    name: str
    layers: int
    hidden: int
    intermediate: int
    backbone_steps: int
    steps: int
    text_only_fraction: float
    trainable_layers: int | None
    seed: int
    align_weight: float = 0.0
    align_layer: int = 1
    text_fraction: float | None = None  # the data mix (None: SpeechMix's default)
    s2t_fraction: float | None = None
    interleaved_fraction: float | None = None
    prefix_fraction: float | None = None
    transcript_fraction: float | None = None
    arithmetic: str = ""  # the CPU code path (core.arithmetic: "aten=avx2;mkl=AVX2"); empty: the machine's own


def _read(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")


def _data_lines(path: str | Path) -> list[int | str]:
    """The file's line numbers of the table's rows (after the header; comment and blank lines skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    kept = [i for i, line in enumerate(lines, start=1) if line.split("#", 1)[0].strip()]
    return kept[1:]


def variant_names(path: str | Path) -> list[str]:
    """The variants' names in the TSV's order (the workflow's jobs and the table's rows); no file: none."""
    return list(_read(path)["name"]) if Path(path).is_file() else []


def variant_cells(path: str | Path, name: str) -> str:
    """The named variant's given cells as sorted JSON (``{column: text}``, empty cells left out): what its job
    depends on in the TSV, so that editing or adding another row does not rerun it (rule
    ``speechlm_sweep_variant``'s param)."""
    rows = [r for r in _read(path).to_dict("records") if r["name"] == name]
    if len(rows) != 1:
        raise ValueError(f"{path}: {len(rows)} variants named {name!r}; names must be unique")
    return json.dumps({k: v for k, v in rows[0].items() if v != ""}, sort_keys=True)


def read_variants(path: str | Path, base: dict[str, Any]) -> list[Variant]:
    """Variants from a TSV with a header of :class:`Variant`'s field names; empty cells take ``base`` (the
    config's values of :data:`BASE`) or the field's default."""
    df = _read(path)
    known = {f.name: f for f in fields(Variant)}
    unknown = sorted(set(df.columns) - set(known))
    if unknown or "name" not in df.columns:
        raise ValueError(f"{path}: columns must be among {sorted(known)} with 'name' (unknown: {unknown})")
    out = []
    lines = _data_lines(path)
    lines += ["?"] * (len(df) - len(lines))  # a row pandas reads that the line count missed: no line number
    for i, row in zip(lines, df.to_dict("records")):
        kw: dict[str, Any] = {k: base[k] for k in BASE}
        for k, v in row.items():
            if v == "":
                continue
            text = k in ("name", "arithmetic")
            typ = str if text else float if k.endswith("fraction") or k == "align_weight" else int
            try:
                kw[k] = typ(v)
            except ValueError:
                raise ValueError(f"{path}, line {i}: {k}={v!r} is not a {typ.__name__}") from None
        out.append(Variant(**kw))
    return out


def run_variant(v: Variant, facts_json: str | Path, extra_json: str | Path, units_npz: str | Path, work: Path, extra_renderings: int, noise: Any, samples: int,
                subject_margin: int) -> dict[str, Any]:
    """Build one variant's two stages under ``work`` and return its row."""
    from factrace.models.offline_speechlm import build as B
    from factrace.models.offline_speechlm.train import Architecture, SpeechMix, TrainSettings

    es = B.EvalSettings(noise=noise, subject_margin=subject_margin, seed=v.seed, samples=samples)
    bb = work / "backbone"
    t0 = time.monotonic()
    B.build_backbone(facts_json, bb, extra_json, TrainSettings(steps=v.backbone_steps, seed=v.seed,
                                                               batch=B.BACKBONE_BATCH),
                     Architecture(v.hidden, v.intermediate, v.layers), es)
    data = B.SpeechData(extra_renderings=extra_renderings, text_only_fraction=v.text_only_fraction,
                        mix=SpeechMix(trainable_layers=v.trainable_layers, align_weight=v.align_weight,
                                      align_layer=v.align_layer, **{k: getattr(v, k) for k in MIX
                                                                    if getattr(v, k) is not None}))
    ev = B.build_offline_speechlm(facts_json, units_npz, bb, work / "speechlm", data,
                                  B.TrainSettings(steps=v.steps, seed=v.seed), es)
    s, co = ev["summary"], ev["carry_over"]
    return {**{f.name: getattr(v, f.name) for f in fields(Variant)},
            "text": s["text"], "speech_heard": s["speech_main"], "speech_held_out": s["speech_held_out"],
            "carry_over": s["carry_over_speech"], "carry_over_n": s["carry_over_n"],
            "carry_over_held_out": (co.get("speech_held_out") or {}).get("accuracy"),
            "chance_template_prior": s["carry_over_template_prior"],
            "chance_random_units": s["carry_over_random_units"],
            "never_heard": ev["never_heard"]["speech"]["accuracy"], "never_heard_n": ev["never_heard"]["speech"]["n"],
            "random_units_heard": s["random_units"], "swap_followed_heard": s["swap_followed"],
            "ratio_t2t": s["ratio_t2t"], "multiplier_t2t": ev["noise_t2t"]["multiplier"],
            "ratio_s2t": s["ratio_s2t"], "multiplier_s2t": ev["noise_s2t"]["multiplier"],
            "build_s": round(time.monotonic() - t0)}


def table(rows: list[str | Path], out: str | Path, order: list[str] | None = None) -> pd.DataFrame:
    """The variants' rows (one TSV each) as one table, in ``order`` of names when given."""
    df = pd.concat([pd.read_csv(r, sep="\t") for r in rows], ignore_index=True)
    if order is not None:
        df = df.set_index("name").loc[[n for n in order if n in set(df["name"])]].reset_index()
    df.to_csv(out, sep="\t", index=False)
    return df


SHOWN = ["name", "arithmetic", "layers", "steps", "trainable_layers", "align_weight", "prefix_fraction", "transcript_fraction", "seed", "text", "speech_heard", "carry_over",
         "carry_over_n", "chance_template_prior", "chance_random_units", "never_heard"]


def main_variant(args: Any) -> int:
    """One variant's build and row (``factrace speechlm-sweep``)."""
    from factrace.core.noise_rule import NoiseRule

    variants = {v.name: v for v in read_variants(args.variants, json.loads(args.base))}
    if args.name not in variants:
        raise ValueError(f"{args.variants}: no variant named {args.name!r} (there are: {sorted(variants)})")
    from factrace.core.arithmetic import apply

    used = apply(variants[args.name].arithmetic)  # before anything computes with torch
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    row = run_variant(variants[args.name], facts_json=args.facts, extra_json=args.extra_facts, units_npz=args.units,
                      work=work, extra_renderings=args.extra_renderings, noise=NoiseRule.from_args(args),
                      samples=args.samples, subject_margin=args.subject_margin)
    row["cpu_capability"] = used["cpu_capability"]
    pd.DataFrame([row]).to_csv(args.out, sep="\t", index=False)
    return 0


def main_table(args: Any) -> int:
    """The variants' rows as one table: printed, written, and a final JSON line (``factrace speechlm-sweep-table``)."""
    order = variant_names(args.variants) if args.variants else None
    df = table(args.rows, args.out, order)
    print(df[[c for c in SHOWN if c in df.columns]].to_string(index=False))
    # a variant whose backbone knows no text-only fact has no carry-over (empty): it cannot be the best
    measured = df.dropna(subset=["carry_over"])
    best = measured.loc[measured["carry_over"].idxmax()] if len(measured) else None
    print(json.dumps({"variants": len(df), "best": None if best is None else str(best["name"]),
                      "best_carry_over": None if best is None else float(best["carry_over"]),
                      "best_n": None if best is None else int(best["carry_over_n"]), "table": str(args.out)}))
    return 0
