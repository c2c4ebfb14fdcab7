"""The offline speech LM: a small speech-text Llama that the workflow builds itself from the offline corpus.

README section (paste as is)
----------------------------

**Offline speech LM (stand-in for SpiritLM).** SpiritLM's weights cannot be shipped, so the offline default
builds its own speech-text model (``factrace build-speechlm``, :func:`build_offline_speechlm`), in SpiritLM's
form: a transformers ``LlamaForCausalLM`` whose vocabulary is a word-level text vocabulary (the words of the
facts' prompts and attributes, normalised: lowercase, accents stripped) plus the markers ``[Text]``,
``[Speech]`` and one token ``[Hu{u}]`` per speech unit (the workflow's mfcc-kmeans units, ``k`` = 100), with
SpiritLM's prompt layout: ``<s> [Text] words`` for text and ``<s> [Speech] [Hu..]... [Text]`` for speech
(deduplicated units, as SpiritLM). It is saved as safetensors + a fast tokenizer with offsets and is loaded
with loader ``spiritlm`` (same marker logic as SpiritLM: :mod:`factrace.speechlm.prompts`).

Construction: every fact's prompt is synthesised with eSpeak NG (:mod:`factrace.speech.tts`) in several
*renderings* (voice, rate in words/min, pitch) and encoded with the workflow's unit model
(:mod:`factrace.speech.units`, the same ``.npz`` that makes the speech tokens traced later). The model, 4 Llama
layers (hidden 128, ~0.7M parameters), is trained from scratch (CPU, seeded, deterministic) on two kinds of
sequence, ``<s> [Text] prompt answer </s>`` (loss on all text tokens) and ``<s> [Speech] units [Text] answer
</s>`` (loss on the answer only), with unit-noise augmentation on the speech side (random unit substitution
and deletion). The speech input is the units of real synthesised audio, never the text: the model can only
answer from speech by recognising the subject's sound pattern in the units.

Renderings: the *main* rendering (``en-us``, 160 wpm, pitch 50: the TTS stage's default, i.e. the audio that
is filtered and traced) is one of the **trained** renderings, so the traced speech prompts are token for token
inputs the model was trained on (eSpeak output is deterministic), as the facts' text is for T->T. One rendering
of a trained voice at an untrained rate and pitch is **held out** and one voice is never heard; the build
writes ``eval.json`` with the accuracy (greedy generation + the filter's match rule) from text, from speech in
the main rendering, in the held-out rendering and in the unheard voice.

Measured on the 58 offline facts (defaults: 6 trained renderings, k = 100 units fitted on them, 1000 steps of
24 sequences, seed 1; 0.89M parameters, vocabulary 282) on the 2-core machine while other jobs shared it: build
442 s (unit fit ~50 s, synthesis + encoding of 8 x 58 prompts 91 s, training 216 s, evaluation 82 s). Accuracy
(greedy, 4 new tokens, the filter's rule): from text 57/58 (98%); from speech in the main rendering 57/58
(98%), in every trained rendering 98%, in the held-out rendering (``en``, 178 wpm, pitch 54) 56/58 (97%), in
the unheard voice (``en-gb-scotland``) 42/58 (72%). With the workflow's own units file (``--units``) the fit
step is skipped.

Noise: with ROME's 3 x std of the subject's unit embeddings, the corrupted speech run keeps much of the
answer (p_corrupted 0.36-0.99 on four facts, against 0.02-0.93 for text): the unit-noise augmentation makes
the speech path robust to perturbed units, so S->T indirect effects are bounded by a small
p_clean - p_corrupted. Raise ``tracing.noise_multiplier`` for S->T if the traces are flat.

What it can show: the whole S->T pipeline (speech prompts, token map, subject speech-range corruption,
restoration, collapse to text tokens, T->T vs S->T comparison and the modality gap) on a model that truly
answers facts from speech tokens. What it cannot show: anything about SpiritLM itself. Its "knowledge" is
memorised from 58 facts (no pre-training, no world knowledge), its text and speech paths were trained jointly
from scratch (SpiritLM adapts a text-pre-trained Llama-2 to speech), and its word-level vocabulary makes every
subject word one text token. Expect diffuse speech traces: the subject is spread over many units and
recognising it needs the whole pattern, so restoring one unit rarely restores the answer.

The alternative, **adapting SmolLM2-135M** (the offline text LM) to speech with new ``[Speech]``/``[Hu..]``
embeddings (optionally LoRA on the blocks), keeps a pre-trained text backbone, which is closer to how SpiritLM
was made and would let speech traces be compared with the backbone's text traces. It costs about 4.5 s per
training step on this 2-core machine (so hundreds of steps take tens of minutes, beyond the 10-minute build
budget), and with 58 facts it would still mostly memorise the speech-to-fact mapping. It is not implemented as
a config option.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Rendering:
    voice: str
    rate: int
    pitch: int = 50

    @property
    def name(self) -> str:
        return f"{self.voice}@{self.rate}wpm-p{self.pitch}"

    @classmethod
    def parse(cls, obj: Any) -> Rendering:
        """From a dict, a (voice, rate[, pitch]) sequence or a string ``voice:rate[:pitch]``."""
        if isinstance(obj, Rendering):
            return obj
        if isinstance(obj, dict):
            return cls(str(obj["voice"]), int(obj["rate"]), int(obj.get("pitch", 50)))
        if isinstance(obj, str):
            obj = obj.split(":")
        parts = list(obj)
        return cls(str(parts[0]), int(parts[1]), int(parts[2]) if len(parts) > 2 else 50)


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


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 1000
    batch: int = 24
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    text_fraction: float = 0.25  # share of text sequences in a batch
    p_sub: float = 0.08  # unit-noise augmentation: substitute a unit
    p_del: float = 0.04  # ... delete a unit
    hidden: int = 128
    intermediate: int = 384
    layers: int = 4
    heads: int = 4
    seed: int = 1
    threads: int = 1  # torch CPU threads while training: 1 is deterministic and fastest on a shared 2-core box


# ---------------------------------------------------------------------------------------------- corpus


def _facts(facts_json: str | Path) -> pd.DataFrame:
    from ..facts.known import load_facts

    return pd.DataFrame([asdict(f) for f in load_facts(facts_json)]).sort_values("known_id", ignore_index=True)


def encode_rendering(facts: pd.DataFrame, rendering: Rendering, units_model: Any, workdir: Path) -> list[list[int]]:
    """Deduplicated units of every fact's prompt synthesised in ``rendering``."""
    from ..speech.audio import load_audio
    from ..speech.tts import synthesize
    from ..speech.units import deduplicate

    out = []
    wav = workdir / "prompt.wav"
    for prompt in facts["prompt"]:
        synthesize(str(prompt), wav, backend="espeak", voice=rendering.voice, rate=rendering.rate,
                   pitch=rendering.pitch)
        wave, sr = load_audio(wav)
        units, _ = deduplicate(units_model.encode(wave, sr))
        out.append([int(u) for u in units])
    return out


def speech_corpus(
    facts: pd.DataFrame, renderings: dict[str, Sequence[Rendering]], units_model: Any
) -> pd.DataFrame:
    """known_id, role, rendering, voice, rate, pitch, units for every fact x rendering."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="speechlm-") as tmp:
        for role, rends in renderings.items():
            for r in rends:
                t0 = time.monotonic()
                units = encode_rendering(facts, r, units_model, Path(tmp))
                log.info("rendering %s (%s): %d prompts, %.1f units/prompt, %.1fs", r.name, role, len(units),
                         float(np.mean([len(u) for u in units])), time.monotonic() - t0)
                for kid, u in zip(facts["known_id"], units, strict=True):
                    rows.append({"known_id": int(kid), "role": role, "rendering": r.name, "voice": r.voice,
                                 "rate": r.rate, "pitch": r.pitch, "units": u})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- tokenizer

SPECIALS = ("<unk>", "<s>", "</s>")


def _normaliser():
    from tokenizers import normalizers

    return normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])


def build_tokenizer(texts: Sequence[str], n_units: int):
    """Word-level fast tokenizer: specials, the normalised words of ``texts``, ``[Text]``, ``[Speech]``,
    ``[Hu0..n_units-1]`` (ids in that order, as SpiritLM puts its markers after the text vocabulary).
    ``tokenizer(text)`` prepends ``<s>`` like Llama's."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    norm = _normaliser()
    pre = pre_tokenizers.Whitespace()
    words: set[str] = set()
    for t in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    markers = ["[Text]", "[Speech]"] + [f"[Hu{u}]" for u in range(n_units)]
    vocab = {t: i for i, t in enumerate([*SPECIALS, *sorted(words), *markers])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = norm
    tk.pre_tokenizer = pre
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tk.add_special_tokens([AddedToken(t, normalized=False) for t in SPECIALS])
    tk.add_tokens([AddedToken(t, normalized=False, special=False) for t in markers])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )


# ---------------------------------------------------------------------------------------------- training


def _sequences(facts: pd.DataFrame, corpus: pd.DataFrame, tokenizer: Any, markers: Any):
    """Text and speech training sequences: (ids, first index with loss)."""
    from .prompts import speech_prompt_ids, text_prompt_ids

    answers = {int(k): [int(i) for i in tokenizer(" " + str(a), add_special_tokens=False)["input_ids"]]
               for k, a in zip(facts["known_id"], facts["attribute"], strict=True)}
    text = []
    for kid, prompt in zip(facts["known_id"], facts["prompt"], strict=True):
        tp = text_prompt_ids(tokenizer, str(prompt), markers)
        text.append((tp.ids + answers[int(kid)] + [markers.eos], tp.n_prefix))
    speech = [(int(k), list(u)) for k, u in zip(corpus["known_id"], corpus["units"], strict=True)]
    return text, speech, answers, speech_prompt_ids


def train_model(
    facts: pd.DataFrame, corpus: pd.DataFrame, tokenizer: Any, settings: TrainSettings, n_units: int,
) -> tuple[Any, list[float]]:
    """Train the Llama from scratch; returns the model (eval mode) and the loss curve (every 50 steps)."""
    import torch

    from .prompts import markers_from_tokenizer

    markers = markers_from_tokenizer(tokenizer)
    text, speech, answers, speech_prompt_ids = _sequences(facts, corpus, tokenizer, markers)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, settings.threads))
    try:
        return _train(model_inputs=(text, speech, answers, speech_prompt_ids, markers), tokenizer=tokenizer,
                      settings=settings, n_units=n_units)
    finally:
        torch.set_num_threads(threads)


def _train(model_inputs, tokenizer, settings: TrainSettings, n_units: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    text, speech, answers, speech_prompt_ids, markers = model_inputs
    torch.manual_seed(settings.seed)
    rng = np.random.Generator(np.random.PCG64(settings.seed))
    max_units = max(len(u) for _, u in speech)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=settings.hidden, intermediate_size=settings.intermediate,
        num_hidden_layers=settings.layers, num_attention_heads=settings.heads,
        num_key_value_heads=settings.heads, max_position_embeddings=max(256, 2 ** math.ceil(math.log2(max_units + 32))),
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, rope_theta=10000.0,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("offline speech LM: %d parameters, vocab %d, %d text and %d speech sequences", n_params,
             cfg.vocab_size, len(text), len(speech))
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < settings.warmup:
            return settings.lr * (step + 1) / settings.warmup
        frac = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
        return settings.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    def augment(units: list[int]) -> list[int]:
        u = np.asarray(units)
        keep = rng.random(u.size) >= settings.p_del
        if keep.sum() < max(1, u.size // 2):
            keep[:] = True
        u = u[keep]
        sub = rng.random(u.size) < settings.p_sub
        u = np.where(sub, rng.integers(0, n_units, u.size), u)
        return [int(x) for x in u]

    n_text = max(1, round(settings.batch * settings.text_fraction))
    losses: list[float] = []
    model.train()
    pad = tokenizer.pad_token_id
    for step in range(settings.steps):
        seqs: list[tuple[list[int], int]] = []
        for i in rng.integers(0, len(text), n_text):
            seqs.append(text[int(i)])
        for i in rng.integers(0, len(speech), settings.batch - n_text):
            kid, units = speech[int(i)]
            ids = speech_prompt_ids(augment(units), markers) + answers[kid] + [markers.eos]
            seqs.append((ids, len(ids) - len(answers[kid]) - 2))  # loss from the [Text] position on
        width = max(len(s) for s, _ in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, (s, first) in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
            # labels[t] is predicted from position t-1 (HF shifts inside): supervise tokens after ``first``
            labels[r, first + 1 : len(s)] = torch.tensor(s[first + 1 :])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == settings.steps - 1:
            if step % 250 == 0 or step == settings.steps - 1:
                log.info("step %d/%d loss %.4f", step + 1, settings.steps, float(loss.detach()))
            losses.append(float(loss.detach()))
            log.debug("step %d/%d loss %.4f lr %.2e", step + 1, settings.steps, float(loss.detach()), lr_at(step))
    model.eval()
    return model, losses


# ---------------------------------------------------------------------------------------------- evaluation


def evaluate(loaded: Any, facts: pd.DataFrame, corpus: pd.DataFrame, max_new_tokens: int = 4) -> dict[str, Any]:
    """Accuracy (match != none, the filter's rule) from text and from speech in every rendering of ``corpus``."""
    from ..filtering.match import classify
    from .filtering import greedy_ids, text_generation
    from .prompts import markers_from_tokenizer, speech_prompt_ids

    markers = markers_from_tokenizer(loaded.tokenizer)
    attrs = dict(zip(facts["known_id"].astype(int), facts["attribute"].astype(str), strict=True))
    res: dict[str, Any] = {"n_facts": len(facts)}
    ok = [classify(text_generation(loaded, str(p), max_new_tokens, markers), attrs[int(k)]) != "none"
          for k, p in zip(facts["known_id"], facts["prompt"], strict=True)]
    res["text"] = {"accuracy": float(np.mean(ok)), "n": len(ok)}
    for (role, name), grp in corpus.groupby(["role", "rendering"], sort=True):
        ok = []
        for kid, units in zip(grp["known_id"], grp["units"], strict=True):
            gen = greedy_ids(loaded, speech_prompt_ids(list(units), markers), max_new_tokens, markers)
            ok.append(classify(gen, attrs[int(kid)]) != "none")
        res.setdefault("speech", {})[name] = {"role": role, "accuracy": float(np.mean(ok)), "n": len(ok)}
    return res


# ---------------------------------------------------------------------------------------------- build


def build_offline_speechlm(
    facts_json: str | Path,
    units_npz: str | Path | None,
    out_dir: str | Path,
    renderings: Sequence[Any] = TRAIN,
    seed: int = 1,
    steps: int = 1000,
    held_out: Any = HELD_OUT,
    unheard: Any | None = UNHEARD,
    main: Any = MAIN,
    k: int = 100,
    settings: TrainSettings | None = None,
    eval_json: str | Path | None = None,
    max_new_tokens: int = 4,
) -> dict[str, Any]:
    """Build the offline speech LM into ``out_dir`` (written beside it, then renamed: all or nothing).

    ``units_npz`` is the workflow's fitted mfcc-kmeans unit model; ``None`` fits one (``k`` units, seeded) on
    the trained renderings and saves it as ``out_dir/units.npz`` (then use that file for the speech tokens).
    ``main`` (the rendering traced later) must be one of ``renderings`` or ``held_out``. Writes the checkpoint
    (``model.safetensors``, ``config.json``, ``tokenizer.json``, ...), ``speech_corpus.parquet`` (the units
    trained and evaluated on), ``speechlm.json`` (how it was built) and ``eval.json`` (also copied to
    ``eval_json`` when given). Returns the evaluation dict.
    """
    import torch

    from ..io import apply_umask, sha256_file, write_json, write_table
    from ..models.load import ModelSpec, load_model
    from ..provenance import Provenance, config_hash
    from ..speech.units import MfccKMeansUnits

    t_start = time.monotonic()
    trained = [Rendering.parse(r) for r in renderings]
    held = Rendering.parse(held_out)
    main_r = Rendering.parse(main)
    unheard_r = Rendering.parse(unheard) if unheard is not None else None
    if held in trained:
        raise ValueError(f"held-out rendering {held.name} is also a trained rendering")
    if main_r not in trained and main_r != held:
        raise ValueError(f"the main rendering {main_r.name} is neither trained nor held out")
    if unheard_r is not None and unheard_r.voice in {r.voice for r in trained}:
        raise ValueError(f"the 'unheard' voice {unheard_r.voice} is a trained voice")
    settings = settings or TrainSettings(steps=steps, seed=seed)
    out = Path(out_dir)
    tmp = out.with_name(f".{out.name}.building")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        facts = _facts(facts_json)
        if units_npz is None:
            from ..speech.units import fit_mfcc_kmeans

            waves = _render_waves(facts, trained)
            units_model = fit_mfcc_kmeans(waves, k=k, seed=seed)
            units_model.save(tmp / "units.npz")
            units_src = str(out / "units.npz")
        else:
            units_model = MfccKMeansUnits.load(units_npz)
            units_src = str(units_npz)
        n_units = units_model.n_units
        roles: dict[str, list[Rendering]] = {"train": trained, "held_out": [held]}
        if unheard_r is not None:
            roles["unheard"] = [unheard_r]
        t0 = time.monotonic()
        corpus = speech_corpus(facts, roles, units_model)
        t_synth = time.monotonic() - t0
        tokenizer = build_tokenizer(list(facts["prompt"]) + list(facts["attribute"]), n_units)
        t0 = time.monotonic()
        torch.manual_seed(settings.seed)
        model, losses = train_model(facts, corpus[corpus["role"] == "train"], tokenizer, settings, n_units)
        t_train = time.monotonic() - t0
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        prov = Provenance(stage="build_speechlm", config_hash=config_hash(asdict(settings)), seed=settings.seed,
                          model_id="offline-speechlm")
        write_table(corpus.assign(units=corpus["units"].map(list)), tmp / "speech_corpus.parquet", None, prov)
        loaded = load_model(ModelSpec(name="offline-speechlm", loader="spiritlm", path=str(tmp), device="cpu"))
        t0 = time.monotonic()
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, settings.threads))
        try:
            ev = evaluate(loaded, facts, corpus, max_new_tokens=max_new_tokens)
        finally:
            torch.set_num_threads(threads)
        t_eval = time.monotonic() - t0
        ev["main_rendering"] = {"rendering": main_r.name, "role": "train" if main_r in trained else "held_out"}
        ev["timing_s"] = {"synthesis_and_units": round(t_synth, 1), "training": round(t_train, 1),
                          "evaluation": round(t_eval, 1), "total": round(time.monotonic() - t_start, 1)}
        ev["n_parameters"] = int(sum(p.numel() for p in model.parameters()))
        ev["final_loss"] = losses[-1] if losses else None
        meta = {
            "kind": "factrace offline speech LM", "loader": "spiritlm", "facts": str(facts_json),
            "facts_sha256": sha256_file(facts_json), "units_npz": units_src, "n_units": n_units,
            "renderings": {role: [asdict(r) for r in rs] for role, rs in roles.items()},
            "main_rendering": asdict(main_r), "settings": asdict(settings), "losses": losses,
            "vocab_size": len(tokenizer),
        }
        write_json(meta, tmp / "speechlm.json")
        write_json(ev, tmp / "eval.json")
        apply_umask(tmp)  # safetensors writes 0600: results follow the umask
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if eval_json is not None:
        write_json(ev, eval_json)
    log.info("offline speech LM built in %.0fs: text %.2f, speech %s", time.monotonic() - t_start,
             ev["text"]["accuracy"], {k: v["accuracy"] for k, v in ev.get("speech", {}).items()})
    return ev


def _render_waves(facts: pd.DataFrame, renderings: Sequence[Rendering]) -> list[tuple[np.ndarray, int]]:
    from ..speech.audio import load_audio
    from ..speech.tts import synthesize

    waves = []
    with tempfile.TemporaryDirectory(prefix="speechlm-fit-") as tmp:
        wav = Path(tmp) / "p.wav"
        for r in renderings:
            for prompt in facts["prompt"]:
                synthesize(str(prompt), wav, backend="espeak", voice=r.voice, rate=r.rate, pitch=r.pitch)
                waves.append(load_audio(wav))
    return waves


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


__all__ = [
    "HELD_OUT", "MAIN", "TRAIN", "UNHEARD", "Rendering", "TrainSettings", "build_offline_speechlm",
    "build_tokenizer", "evaluate", "parse_renderings", "speech_corpus", "train_model",
]
