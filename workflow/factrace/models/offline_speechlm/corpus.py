"""Training corpus of the offline speech LM: facts (traced, extra, carry-over), renderings, speech units.

* **Facts.** The *traced* facts are the configured facts file. The *extra* facts (``resources/speechlm/
  extra_facts.json``) are other subjects with their true attributes on the same templates, so every template
  the traced facts use is seen with several subjects and different answers: the template alone does not give
  the answer, the subject is necessary. Every fact is in the text backbone's training data.
* **Speech sets** (``speech_set``), what stage 2 may do with a fact's speech: *heard* (its spoken prompt is
  followed by its answer), *text_only* (a seeded share of the traced facts, ``text_only_fraction``: its speech
  is heard only in sequences that end before the answer, so subject and attribute never meet in a sequence with
  speech; speech accuracy on them is carry-over), *never_heard* (per template the last extra fact: no speech at
  all, the harder condition).
* **Renderings** (voice, rate in words/min, pitch): eSpeak NG settings of one prompt's audio. The *main*
  rendering is the TTS stage's (the audio that is filtered and traced); one rendering is held out, one voice
  is never heard.
* **Speech units**: the workflow's unit model on each rendering's audio, deduplicated as SpiritLM does, with
  the subject's ``[start, end)`` range in the deduplicated units from eSpeak's own word onsets at 25 Hz (the
  rule of the token map: ``floor(onset * 25)`` to ``ceil(end * 25)``, then the runs covering those frames).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: known_id of the first extra fact (traced facts keep their own ids, below this).
EXTRA_ID0 = 1_000_000
DEFAULT_EXTRA = Path(__file__).resolve().parents[4] / "resources" / "speechlm" / "extra_facts.json"


@dataclass(frozen=True)
class Rendering:
    voice: str  # an eSpeak NG voice
    rate: int  # words per minute
    pitch: int  # 0-100

    @property
    def name(self) -> str:
        return f"{self.voice}@{self.rate}wpm-p{self.pitch}"

    @classmethod
    def parse(cls, obj: Any) -> Rendering:
        """From a dict, a (voice, rate, pitch) sequence or a string ``voice:rate:pitch``."""
        if isinstance(obj, Rendering):
            return obj
        if isinstance(obj, dict):
            obj = [obj.get("voice"), obj.get("rate"), obj.get("pitch")]
        if isinstance(obj, str):
            obj = obj.split(":")
        parts = list(obj)
        if len(parts) != 3 or None in parts:
            raise ValueError(f"a rendering is voice:rate:pitch (e.g. en-us:160:50), got {obj!r}")
        return cls(str(parts[0]), int(parts[1]), int(parts[2]))


#: The TTS stage's default rendering: the prompt audio that is filtered and traced.
MAIN = Rendering("en-us", 160, 50)
TRAIN: tuple[Rendering, ...] = (
    MAIN,
    Rendering("en-us", 135, 42),
    Rendering("en-us", 190, 58),
    Rendering("en", 150, 50),
    Rendering("en-gb-x-rp", 170, 46),
    Rendering("en-us+m3", 160, 55),
)
HELD_OUT = Rendering("en", 178, 54)  # a trained voice at an untrained rate and pitch
UNHEARD = Rendering("en-gb-scotland", 160, 50)  # a voice never trained on


def parse_renderings(spec: str | Sequence[Any] | None) -> list[Rendering] | None:
    """``"en-us:160:50,en:150"`` or a JSON list of dicts/lists -> renderings (None passes through)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        s = spec.strip()
        if s.startswith("["):
            return [Rendering.parse(x) for x in json.loads(s)]
        return [Rendering.parse(x) for x in s.split(",") if x.strip()]
    return [Rendering.parse(x) for x in spec]


# ---------------------------------------------------------------------------------------------- facts


def load_traced(facts_json: str | Path) -> pd.DataFrame:
    from factrace.facts.known import load_facts

    df = pd.DataFrame([asdict(f) for f in load_facts(facts_json)]).sort_values("known_id", ignore_index=True)
    return df.assign(set="traced")[["known_id", "set", "template", "subject", "attribute", "prompt"]]


def all_facts(facts_json: str | Path, extra_json: str | Path | None = DEFAULT_EXTRA,
              max_extra: int | None = None, text_only_fraction: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Traced facts + the extra facts of their templates (``set``: traced / extra), each with its
    ``speech_set`` (:func:`speech_sets`).

    Per template at most ``max_extra`` extra facts are taken (None: all); when at least two are taken, the last
    one is never heard in speech (``never_heard``). A subject already traced on that template is skipped."""
    traced = load_traced(facts_json)
    rows = []
    if extra_json is not None:
        spec = json.loads(Path(extra_json).read_text(encoding="utf-8"))["templates"]
        kid = EXTRA_ID0
        for template in sorted(set(traced["template"])):
            seen = set(traced.loc[traced["template"] == template, "subject"])
            pairs = [p for p in spec.get(template, []) if p["subject"] not in seen][:max_extra]
            if len(pairs) < 1:
                log.warning("template %r has no extra facts: its subject is not necessary by construction", template)
            for i, p in enumerate(pairs):
                rows.append({"known_id": kid, "set": "extra", "template": template, "subject": p["subject"],
                             "attribute": p["attribute"], "prompt": template.replace("{}", p["subject"]),
                             "never_heard": len(pairs) >= 2 and i == len(pairs) - 1})
                kid += 1
    extra = pd.DataFrame(rows, columns=[*traced.columns, "never_heard"])
    facts = pd.concat([traced, extra.drop(columns="never_heard")], ignore_index=True)
    return facts.assign(speech_set=speech_sets(facts, set(extra.loc[extra["never_heard"], "known_id"]),
                                               text_only_fraction, seed))


def text_only_ids(known_ids: Sequence[int], fraction: float, seed: int) -> set[int]:
    """The traced facts learnt in text only: the first ``round(fraction * n)`` of ``known_ids`` in the order of
    ``sha256("{seed}:{known_id}")`` (deterministic, seeded, independent of the facts' order and of the others)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"speech.speechlm.text_only_fraction must be in [0, 1], got {fraction}")
    ids = sorted({int(k) for k in known_ids})
    order = sorted(ids, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    return set(order[: round(fraction * len(ids))])


def speech_sets(facts: pd.DataFrame, never_heard: set[int], text_only_fraction: float, seed: int) -> list[str]:
    """Per fact, how stage 2 may use its speech: ``heard`` (its spoken prompt with its answer), ``text_only``
    (traced, answer learnt in text only: its speech is heard only in sequences without the answer) or
    ``never_heard`` (no speech at all)."""
    text_only = text_only_ids(facts.loc[facts["set"] == "traced", "known_id"], text_only_fraction, seed)
    return ["never_heard" if int(k) in never_heard else "text_only" if int(k) in text_only else "heard"
            for k in facts["known_id"]]


# ---------------------------------------------------------------------------------------------- speech


def subject_word_span(prompt: str, subject: str) -> tuple[int, int]:
    """[first, last + 1) of the whitespace words of ``prompt`` that overlap the subject's characters."""
    from factrace.speech.tts.base import text_words

    c0 = prompt.find(subject)
    if c0 < 0:
        raise ValueError(f"subject {subject!r} not in prompt {prompt!r}")
    c1 = c0 + len(subject)
    idx, pos = [], 0
    for i, w in enumerate(text_words(prompt)):
        s = prompt.index(w, pos)
        pos = s + len(w)
        if s < c1 and pos > c0:
            idx.append(i)
    return idx[0], idx[-1] + 1


def word_unit_ranges(synth: Any, run_lengths: np.ndarray, rate_hz: float) -> dict[int, tuple[int, int]]:
    """Per spoken word (index into the prompt's whitespace words): its [start, end) in deduplicated units,
    from eSpeak's word onsets/ends at ``rate_hz`` (``floor(onset * rate)`` to ``ceil(end * rate)``, then the
    runs covering those frames)."""
    from factrace.speech.token_map import frame_to_run, seconds_to_units

    f2r = frame_to_run(run_lengths)
    out = {}
    for i, (_, on), (_, end) in zip(synth.word_indices, synth.word_onsets, synth.word_ends, strict=True):
        f0, f1 = seconds_to_units(float(on), float(end), rate_hz)
        f0 = min(max(f0, 0), f2r.size - 1)
        f1 = min(max(f1, f0 + 1), f2r.size)
        out[int(i)] = (int(f2r[f0]), int(f2r[f1 - 1]) + 1)
    return out


def subject_unit_range(ranges: dict[int, tuple[int, int]], words: tuple[int, int]) -> tuple[int, int]:
    """The subject's [start, end) in deduplicated units from its words' ranges; a unit shared with the next
    spoken word goes to that word, as in the token map (:func:`factrace.speech.token_map.resolve`), so the
    range is the one the traces corrupt."""
    spoken = [ranges[i] for i in range(*words) if i in ranges]
    if not spoken:
        raise ValueError("eSpeak reported no onset for the subject's words")
    s, e = min(a for a, _ in spoken), max(b for _, b in spoken)
    nxt = [ranges[i][0] for i in sorted(ranges) if i >= words[1]]
    if nxt:
        e = max(min(e, nxt[0]), s + 1)
    return s, e


def encode(facts: pd.DataFrame, rendering: Rendering, units_model: Any, workdir: Path) -> list[dict[str, Any]]:
    """Deduplicated units and subject range of every fact's prompt synthesised in ``rendering``."""
    from factrace.speech.audio import load_audio
    from factrace.speech.tts.synthesis import synthesize
    from factrace.speech.units.tokenizer import deduplicate

    out = []
    wav = workdir / "prompt.wav"
    for r in facts.itertuples():
        res = synthesize(str(r.prompt), wav, backend="espeak", voice=rendering.voice, rate=rendering.rate,
                         pitch=rendering.pitch)
        wave, sr = load_audio(wav)
        units, runs = deduplicate(units_model.encode(wave, sr))
        ranges = word_unit_ranges(res, runs, float(getattr(units_model, "rate_hz", 25.0)))
        words = subject_word_span(str(r.prompt), str(r.subject))
        s, e = subject_unit_range(ranges, words)
        spoken = sorted(ranges)  # the words eSpeak reported, and their [start, end) in units: where an
        # interleaved sequence may switch between speech and text (SpiritLM switches at word boundaries)
        out.append({"known_id": int(r.known_id), "units": [int(u) for u in units], "subj_start": s, "subj_end": e,
                    "subj_words": [int(words[0]), int(words[1])], "word_idx": spoken,
                    "word_start": [int(ranges[i][0]) for i in spoken], "word_end": [int(ranges[i][1]) for i in spoken]})
    return out


def select(facts: pd.DataFrame, name: str) -> pd.DataFrame:
    """The facts a plan entry speaks: ``traced`` (heard and text-only), ``extra`` (the heard extra facts) or
    ``never_heard`` (spoken for the evaluation only)."""
    if name == "traced":
        return facts[facts["set"] == "traced"]
    if name == "extra":
        return facts[(facts["set"] == "extra") & (facts["speech_set"] == "heard")]
    if name == "never_heard":
        return facts[facts["speech_set"] == "never_heard"]
    raise ValueError(f"unknown fact selection {name!r}")


def speech_corpus(facts: pd.DataFrame, plan: Sequence[tuple[str, Rendering, Sequence[str]]],
                  units_model: Any) -> pd.DataFrame:
    """One row per (fact, rendering) of ``plan`` = [(role, rendering, fact sets)]: known_id, role, rendering,
    voice, rate, pitch, units, subj_start, subj_end (the subject in units), subj_words (the subject's [first, last
    + 1) whitespace words), word_idx, word_start, word_end (each spoken word of the prompt and its [start, end)
    in units)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="speechlm-") as tmp:
        for role, r, sets in plan:
            t0 = time.monotonic()
            sub = pd.concat([select(facts, name) for name in sets])
            enc = encode(sub, r, units_model, Path(tmp))
            log.info("rendering %s (%s, %s): %d prompts, %.1f units/prompt, %.1fs", r.name, role, "+".join(sets),
                     len(enc), float(np.mean([len(x["units"]) for x in enc])) if enc else 0.0,
                     time.monotonic() - t0)
            rows += [{**x, "role": role, "rendering": r.name, "voice": r.voice, "rate": r.rate, "pitch": r.pitch}
                     for x in enc]
    return pd.DataFrame(rows, columns=["known_id", "role", "rendering", "voice", "rate", "pitch", "units",
                                       "subj_start", "subj_end", "subj_words", "word_idx", "word_start",
                                       "word_end"])


def render_waves(facts: pd.DataFrame, renderings: Sequence[Rendering]) -> list[tuple[np.ndarray, int]]:
    """Audio of every prompt in every rendering (to fit a unit model when none is given)."""
    from factrace.speech.audio import load_audio
    from factrace.speech.tts.synthesis import synthesize

    waves = []
    with tempfile.TemporaryDirectory(prefix="speechlm-fit-") as tmp:
        wav = Path(tmp) / "p.wav"
        for r in renderings:
            for prompt in facts["prompt"]:
                synthesize(str(prompt), wav, backend="espeak", voice=r.voice, rate=r.rate, pitch=r.pitch)
                waves.append(load_audio(wav))
    return waves
