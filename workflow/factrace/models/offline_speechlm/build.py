"""The offline speech LM, built as SpiritLM is: a text backbone (stage 1), then its speech adaptation (stage 2).

* :func:`build_backbone` (``factrace build-speechlm-backbone``): a small Llama trained from scratch on the text of
  the traced facts plus the extra facts of their templates (:mod:`factrace.models.offline_speechlm.corpus`), saved as a plain
  HF checkpoint (loader ``hf``) with ``facts.parquet`` (every fact and its set) and ``eval.json``.
* :func:`build_offline_speechlm` (``factrace build-speechlm``): that backbone with ``[Text]``, ``[Speech]`` and
  ``[Hu{u}]`` embeddings added, continued on speech -> text data (:mod:`factrace.models.offline_speechlm.train`), saved in
  SpiritLM's layout (loader ``spiritlm``) with ``speech_corpus.parquet``, ``speechlm.json`` and ``eval.json``
  (:mod:`factrace.models.offline_speechlm.evaluate`).

Both write into a sibling directory and rename it at the end (all or nothing).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from factrace.core.noise_rule import NoiseRule
from factrace.models.offline_speechlm.corpus import (
    HELD_OUT,
    MAIN,
    TRAIN,
    UNHEARD,
    Rendering,
    all_facts,
    parse_renderings,
)
from factrace.models.offline_speechlm.train import Architecture, SpeechMix, TrainSettings, build_tokenizer

log = logging.getLogger(__name__)


BACKBONE_BATCH = 32  # stage 1's batch (stage 2: TrainSettings.batch)


@dataclass(frozen=True)
class EvalSettings:
    """What eval.json measures with: the config's noise and subject margin, and the evaluation's own sizes."""

    noise: NoiseRule  # tracing.noise_multiplier, noise_grid, noise_target_ratio: each modality's multiplier
    subject_margin: int | None  # tracing.subject_margin_s2t: units added on each side of the subject (stage 2)
    seed: int  # seed
    samples: int  # tracing.samples: noise samples per fact
    draws: int = 2  # random-unit ablation draws
    max_new_tokens: int = 4


@dataclass(frozen=True)
class SpeechData:
    extra_renderings: int  # speech.speechlm.extra_renderings: extra facts are spoken in the first N renderings
    text_only_fraction: float = 0.0  # speech.speechlm.text_only_fraction: traced facts learnt in text only
    renderings: tuple[Rendering, ...] = TRAIN
    held_out: Rendering = HELD_OUT
    unheard: Rendering | None = UNHEARD
    main: Rendering = MAIN
    mix: SpeechMix = field(default_factory=SpeechMix)


@contextmanager
def _staging(out_dir: str | Path) -> Iterator[Path]:
    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.building")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        from factrace.core.io import apply_umask

        apply_umask(tmp)  # safetensors writes 0600: results follow the umask
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _texts(facts: pd.DataFrame) -> list[str]:
    return list(facts["prompt"]) + list(facts["attribute"])


def _threads(n: int):
    import torch

    class _T:
        def __enter__(self) -> None:
            self.old = torch.get_num_threads()
            torch.set_num_threads(max(1, n))

        def __exit__(self, *a: object) -> None:
            torch.set_num_threads(self.old)

    return _T()


def _write(ev: dict[str, Any], meta: dict[str, Any], tmp: Path, name: str) -> None:
    from factrace.core.io import write_json

    write_json(meta, tmp / name)
    write_json(ev, tmp / "eval.json")


# ---------------------------------------------------------------------------------------------- stage 1


def build_backbone(facts_json: str | Path, out_dir: str | Path, extra_json: str | Path | None,
                   settings: TrainSettings, arch: Architecture, ev_settings: EvalSettings,
                   max_extra: int | None = None, eval_json: str | Path | None = None) -> dict[str, Any]:
    """Stage 1 into ``out_dir``; returns its evaluation (text accuracy per fact set, T->T noise ratio)."""
    from factrace.core.io import sha256_file, write_json, write_table
    from factrace.core.provenance import Provenance, config_hash
    from factrace.models.offline_speechlm import evaluate as E
    from factrace.models.offline_speechlm.noise import noise_under_rule
    from factrace.models.offline_speechlm.train import train_backbone

    t0 = time.monotonic()
    facts = all_facts(facts_json, extra_json, max_extra)
    tok = build_tokenizer(_texts(facts))
    with _staging(out_dir) as tmp, _threads(settings.threads):
        model, losses = train_backbone(facts, tok, settings, arch)
        t_train = time.monotonic() - t0
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        prov = Provenance(stage="build_speechlm_backbone", config_hash=config_hash(asdict(settings)),
                          seed=settings.seed, model_id="offline-speechlm-backbone")
        write_table(facts, tmp / "facts.parquet", None, prov)
        ok = E.text_accuracy(model, tok, facts, None, ev_settings.max_new_tokens)
        traced = facts[facts["set"] == "traced"]
        ev: dict[str, Any] = {"stage": "backbone", "n_parameters": int(sum(p.numel() for p in model.parameters())),
                              "text": {s: E.accuracy([ok[int(k)] for k in facts.loc[facts["set"] == s, "known_id"]])
                                       for s in ("traced", "extra")},
                              "noise_t2t": noise_under_rule(model, E.text_noise_items(tok, traced, None),
                                                            ev_settings.noise, ev_settings.samples,
                                                            ev_settings.seed, "backbone T->T"),
                              "final_loss": losses[-1] if losses else None}
        ev["timing_s"] = {"training": round(t_train, 1), "total": round(time.monotonic() - t0, 1)}
        meta = {"kind": "factrace offline speech LM backbone", "loader": "hf", "facts": str(facts_json),
                "facts_sha256": sha256_file(facts_json), "extra_facts": None if extra_json is None else str(extra_json),
                "settings": asdict(settings), "architecture": asdict(arch), "losses": losses,
                "vocab_size": len(tok), "sets": facts["set"].value_counts().to_dict()}
        _write(ev, meta, tmp, "backbone.json")
    if eval_json is not None:
        write_json(ev, eval_json)
    log.info("backbone built in %.0fs: text %s", time.monotonic() - t0, {k: v["accuracy"] for k, v in ev["text"].items()})
    return ev


# ---------------------------------------------------------------------------------------------- stage 2


def _plan(data: SpeechData) -> list[tuple[str, Rendering, tuple[str, ...]]]:
    plan: list[tuple[str, Rendering, tuple[str, ...]]] = []
    for i, r in enumerate(data.renderings):
        plan.append(("train", r, ("traced", "extra") if i < data.extra_renderings else ("traced",)))
    plan.append(("held_out", data.held_out, ("traced",)))
    if data.unheard is not None:
        plan.append(("unheard", data.unheard, ("traced",)))
    plan.append(("never_heard", data.main, ("never_heard",)))
    return plan


def _check(data: SpeechData) -> None:
    trained = list(data.renderings)
    if data.held_out in trained:
        raise ValueError(f"held-out rendering {data.held_out.name} is also a trained rendering")
    if data.main not in trained and data.main != data.held_out:
        raise ValueError(f"the main rendering {data.main.name} is neither trained nor held out")
    if data.unheard is not None and data.unheard.voice in {r.voice for r in trained}:
        raise ValueError(f"the 'unheard' voice {data.unheard.voice} is a trained voice")


def build_offline_speechlm(
    facts_json: str | Path, units_npz: str | Path | None, backbone_dir: str | Path, out_dir: str | Path,
    data: SpeechData, settings: TrainSettings, ev_settings: EvalSettings, k: int | None = None,
    eval_json: str | Path | None = None,
) -> dict[str, Any]:
    """Stage 2 into ``out_dir`` from the stage-1 checkpoint ``backbone_dir``; returns the evaluation.

    ``units_npz`` is the workflow's fitted unit model; ``None`` fits one (``k`` units) on the trained renderings
    of the traced facts and saves it as ``out_dir/units.npz``."""
    from transformers import LlamaForCausalLM

    from factrace.core.io import read_table, sha256_file, write_json, write_table
    from factrace.core.provenance import Provenance, config_hash
    from factrace.models.offline_speechlm.corpus import load_traced, render_waves, speech_corpus, speech_sets
    from factrace.models.offline_speechlm.sequences import training_sequences
    from factrace.models.offline_speechlm.train import adapt_to_speech, extend_embeddings
    from factrace.speech.units.tokenizer import MfccKMeansUnits

    _check(data)
    t0 = time.monotonic()
    facts = read_table(Path(backbone_dir) / "facts.parquet")
    facts = facts.assign(speech_set=speech_sets(facts, set(facts.loc[facts["speech_set"] == "never_heard",
                                                                   "known_id"]), data.text_only_fraction,
                                                settings.seed))
    traced_now = load_traced(facts_json)
    if sorted(traced_now["prompt"]) != sorted(facts.loc[facts["set"] == "traced", "prompt"]):
        raise ValueError(f"the backbone {backbone_dir} was built on other facts than {facts_json}: rebuild it")
    with _staging(out_dir) as tmp, _threads(settings.threads):
        if units_npz is None:
            from factrace.speech.units.tokenizer import fit_mfcc_kmeans

            if k is None:
                raise ValueError("without a unit model (units_npz), give k: the number of units to fit")
            units_model = fit_mfcc_kmeans(render_waves(traced_now, data.renderings), k=k, seed=settings.seed)
            units_model.save(tmp / "units.npz")
            units_src = str(Path(out_dir) / "units.npz")
        else:
            units_model, units_src = MfccKMeansUnits.load(units_npz), str(units_npz)
        t1 = time.monotonic()
        corpus = speech_corpus(facts, _plan(data), units_model)
        t_synth = time.monotonic() - t1
        backbone = LlamaForCausalLM.from_pretrained(backbone_dir)
        tok = build_tokenizer(_texts(facts), units_model.n_units)
        btok = build_tokenizer(_texts(facts))
        n_words = len(btok)
        if backbone.get_input_embeddings().weight.shape[0] != n_words or any(
                tok.convert_tokens_to_ids(w) != i for w, i in btok.get_vocab().items()):
            raise ValueError("the speech LM's word ids differ from the backbone's: rebuild the backbone")
        model = extend_embeddings(backbone, len(tok) - n_words, settings.seed)
        t1 = time.monotonic()
        sequences = training_sequences(facts, corpus, data.mix.transcripts)
        model, losses = adapt_to_speech(model, facts, corpus, tok, settings, data.mix, sequences)
        t_train = time.monotonic() - t1
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        prov = Provenance(stage="build_speechlm", config_hash=config_hash(asdict(settings)), seed=settings.seed,
                          model_id="offline-speechlm")
        write_table(corpus, tmp / "speech_corpus.parquet", None, prov)
        write_table(sequences, tmp / "train_sequences.parquet", None, prov)  # corpus_row: a row of speech_corpus
        write_table(facts, tmp / "facts.parquet", None, prov)
        t1 = time.monotonic()
        ev = evaluate_speechlm(model, tok, facts, corpus, data, ev_settings, backbone_dir)
        ev["timing_s"] = {"synthesis_and_units": round(t_synth, 1), "training": round(t_train, 1),
                          "evaluation": round(time.monotonic() - t1, 1), "total": round(time.monotonic() - t0, 1)}
        ev["final_loss"] = losses[-1] if losses else None
        meta = {"kind": "factrace offline speech LM", "loader": "spiritlm", "backbone": str(backbone_dir),
                "facts": str(facts_json), "facts_sha256": sha256_file(facts_json), "units_npz": units_src,
                "n_units": units_model.n_units, "plan": [(r, asdict(x), list(s)) for r, x, s in _plan(data)],
                "main_rendering": asdict(data.main), "settings": asdict(settings), "mix": asdict(data.mix),
                "eval_settings": asdict(ev_settings), "losses": losses, "vocab_size": len(tok)}
        _write(ev, meta, tmp, "speechlm.json")
    if eval_json is not None:
        write_json(ev, eval_json)
    log.info("speech LM built in %.0fs: %s", time.monotonic() - t0, ev["summary"])
    return ev


def evaluate_speechlm(model: Any, tok: Any, facts: pd.DataFrame, corpus: pd.DataFrame, data: SpeechData,
                      es: EvalSettings, backbone_dir: str | Path) -> dict[str, Any]:
    """eval.json of the speech LM (see :mod:`factrace.models.offline_speechlm.evaluate`)."""

    from factrace.models.offline_speechlm import evaluate as E
    from factrace.models.offline_speechlm.noise import noise_under_rule
    from factrace.speechlm.prompts import markers_from_tokenizer

    markers = markers_from_tokenizer(tok)
    traced = facts[facts["set"] == "traced"]
    heard = traced[traced["speech_set"] == "heard"]
    n = es.max_new_tokens
    ev: dict[str, Any] = {"stage": "speechlm", "n_parameters": int(sum(p.numel() for p in model.parameters())),
                          "n_facts": len(traced), "n_heard": len(heard), "n_text_only": len(traced) - len(heard),
                          "main_rendering": data.main.name}
    ok_text = E.text_accuracy(model, tok, traced, markers, n)
    ev["text"] = E.accuracy(list(ok_text.values()))
    ev["speech"] = {}
    shown = {data.main.name, data.held_out.name} | ({data.unheard.name} if data.unheard is not None else set())
    spoken = corpus[corpus["rendering"].isin(shown) & corpus["role"].isin(["train", "held_out", "unheard"])]
    for (role, name), grp in spoken.groupby(["role", "rendering"], sort=True):
        ok = E.speech_accuracy(model, tok, markers, facts, grp[grp["known_id"].isin(heard["known_id"])], n)
        ev["speech"][name] = {"role": role, **E.accuracy(list(ok.values()))}
    main = corpus[(corpus["rendering"] == data.main.name) & corpus["role"].isin(["train", "held_out"])]
    ev["speech_main"] = ev["speech"][data.main.name]["accuracy"]
    ev["speech_held_out"] = ev["speech"][data.held_out.name]["accuracy"]
    ev["speech_unheard"] = ev["speech"][data.unheard.name]["accuracy"] if data.unheard is not None else None
    ev["ablation"] = E.subject_ablation(model, tok, markers, facts, main, es.subject_margin, es.draws, es.seed, n,
                                        known_ids=list(heard["known_id"]))
    ev["noise_t2t"] = noise_under_rule(model, E.text_noise_items(tok, traced, markers), es.noise, es.samples,
                                       es.seed, "speech LM T->T")
    s2t_items = E.speech_noise_items(tok, markers, facts, main[main["known_id"].isin(heard["known_id"])],
                                     es.subject_margin)
    ev["noise_s2t"] = noise_under_rule(model, s2t_items, es.noise, es.samples, es.seed, "speech LM S->T")
    t2t_multiplier = ev["noise_t2t"]["multiplier"]
    if ev["noise_s2t"]["multiplier"] != t2t_multiplier:  # S->T under the T->T multiplier too
        ev["noise_s2t_at_t2t_multiplier"] = E.noise_ratios(model, s2t_items, t2t_multiplier, es.samples, es.seed)
    ev["carry_over"] = carry_over(model, tok, markers, facts, corpus, data, es, backbone_dir)
    ev["never_heard"] = ev["carry_over"].pop("never_heard")
    ev["summary"] = {"text": ev["text"]["accuracy"], "speech_main": ev["speech_main"],
                     "speech_held_out": ev["speech_held_out"], "speech_unheard": ev["speech_unheard"],
                     "random_units": ev["ablation"]["random_units_accuracy"],
                     "swap_followed": ev["ablation"]["swap"]["followed"],
                     "ratio_t2t": ev["noise_t2t"]["median_ratio"], "ratio_s2t": ev["noise_s2t"]["median_ratio"],
                     "ratio_s2t_at_t2t_multiplier": ev.get("noise_s2t_at_t2t_multiplier", ev["noise_s2t"])[
                         "median_ratio"],
                     "carry_over_speech": ev["carry_over"]["speech"]["accuracy"],
                     "carry_over_n": ev["carry_over"]["speech"]["n"],
                     "carry_over_template_prior": ev["carry_over"]["template_prior"]["accuracy"],
                     "carry_over_random_units": ev["carry_over"]["random_units"]}
    return ev


def carry_over(model: Any, tok: Any, markers: Any, facts: pd.DataFrame, corpus: pd.DataFrame, data: SpeechData,
               es: EvalSettings, backbone_dir: str | Path) -> dict[str, Any]:
    """Speech accuracy on the text-only facts that the backbone answers in text, with its chance levels, and the
    same on the never-heard facts (see :mod:`factrace.models.offline_speechlm.evaluate`)."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from factrace.models.offline_speechlm import evaluate as E

    n = es.max_new_tokens
    bb = LlamaForCausalLM.from_pretrained(backbone_dir).eval()
    bb_tok = AutoTokenizer.from_pretrained(backbone_dir)
    out: dict[str, Any] = {}
    for name, roles in (("text_only", ("train", "held_out")), ("never_heard", ("never_heard",))):
        group = facts[facts["speech_set"] == name]
        bb_ok = E.text_accuracy(bb, bb_tok, group, None, n)
        known = group[group["known_id"].isin([k for k, v in bb_ok.items() if v])]
        rows = corpus[corpus["known_id"].isin(known["known_id"]) & corpus["role"].isin(list(roles))]
        main = rows[rows["rendering"] == data.main.name]
        res: dict[str, Any] = {"n_facts": len(group), "backbone_text": E.accuracy(list(bb_ok.values())),
                               "speechlm_text": E.accuracy(list(E.text_accuracy(model, tok, known, markers,
                                                                                n).values())),
                               "speech": E.accuracy(list(E.speech_accuracy(model, tok, markers, facts, main,
                                                                           n).values())),
                               "template_prior": E.template_prior(facts, known)}
        held = rows[rows["rendering"] == data.held_out.name]
        if len(held):
            res["speech_held_out"] = E.accuracy(list(E.speech_accuracy(model, tok, markers, facts, held,
                                                                       n).values()))
        if name == "text_only":
            abl = E.subject_ablation(model, tok, markers, facts, main, es.subject_margin, es.draws, es.seed, n,
                                     known_ids=list(known["known_id"]))
            res["random_units"] = abl["random_units_accuracy"]
            res["swap_followed"] = abl["swap"]["followed"]
        out[name] = res
    return {**out.pop("text_only"), "never_heard": out["never_heard"]}


__all__ = [
    "HELD_OUT", "MAIN", "TRAIN", "UNHEARD", "Architecture", "EvalSettings", "Rendering", "SpeechData",
    "SpeechMix", "TrainSettings", "build_backbone", "build_offline_speechlm", "build_tokenizer", "parse_renderings",
]


def renderings_of(spec: Sequence[Any] | str | None) -> tuple[Rendering, ...]:
    return tuple(parse_renderings(spec) or TRAIN)
