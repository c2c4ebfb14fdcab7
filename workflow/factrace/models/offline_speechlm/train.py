"""The two training stages of the offline speech LM: a text backbone, then its speech adaptation.

* Stage 1, :func:`train_backbone`: a Llama trained from scratch on ``<s> prompt answer </s>`` of every fact
  (traced, extra and carry-over), loss on every token after ``<s>``: a plain text LM (loader ``hf``).
* Stage 2, :func:`adapt_to_speech`: the backbone's weights with new embedding rows for ``[Text]``,
  ``[Speech]`` and ``[Hu0..k-1]`` (the vocabulary grows, the word ids stay), continued on

  - *speech -> text*: ``<s> [Speech] units [Text] answer </s>`` (SpiritLM's S->T prompt), and
  - *interleaved speech -> text*: ``<s> [Speech] units of the first words [Text] the remaining words answer
    </s>``, switching at a word boundary after the subject (SpiritLM's interleaved data: the text
    continuation is the transcript of what follows, so unit patterns are tied to words),
  - *text*: ``<s> [Text] prompt answer </s>`` of every fact (the backbone's data, so text recall stays),

  with light unit-noise augmentation (random substitution / deletion) on the speech side. Carry-over facts
  have no speech at all.
Both stages are seeded, on CPU, with ``threads`` torch threads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SPECIALS = ("<unk>", "<s>", "</s>")


@dataclass(frozen=True)
class TrainSettings:
    """One stage's optimisation (the architecture is fixed by the backbone)."""

    steps: int  # speech.speechlm.backbone_steps or .steps
    seed: int  # seed
    batch: int = 24
    lr: float = 3e-3
    warmup: int = 100
    weight_decay: float = 0.01
    threads: int = 1  # torch CPU threads (the rule's threads)


@dataclass(frozen=True)
class Architecture:
    """The backbone's size: models.<backbone>.hidden, .intermediate and .n_layers; heads is fixed."""

    hidden: int
    intermediate: int
    layers: int
    heads: int = 4


@dataclass(frozen=True)
class SpeechMix:
    """Stage 2's batch composition and augmentation."""

    text_fraction: float = 0.2  # text sequences
    interleaved_fraction: float = 0.3  # interleaved speech -> text sequences (the rest: S->T with the answer)
    p_sub: float = 0.04  # unit-noise augmentation: substitute a unit
    p_del: float = 0.02  # ... delete a unit


# ---------------------------------------------------------------------------------------------- tokenizer


def _normaliser():
    from tokenizers import normalizers

    return normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])


def build_tokenizer(texts: list[str], n_units: int = 0):
    """Word-level fast tokenizer: specials, the normalised words of ``texts`` (sorted), then, when ``n_units``
    > 0, ``[Text]``, ``[Speech]``, ``[Hu0..n_units-1]`` (after the text vocabulary, as in SpiritLM). The same
    ``texts`` give the same word ids with or without markers. ``tokenizer(text)`` prepends ``<s>``."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    norm = _normaliser()
    pre = pre_tokenizers.Whitespace()
    words: set[str] = set()
    for t in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    markers = ["[Text]", "[Speech]"] + [f"[Hu{u}]" for u in range(n_units)] if n_units else []
    vocab = {t: i for i, t in enumerate([*SPECIALS, *sorted(words), *markers])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = norm
    tk.pre_tokenizer = pre
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tk.add_special_tokens([AddedToken(t, normalized=False) for t in SPECIALS])
    if markers:
        tk.add_tokens([AddedToken(t, normalized=False, special=False) for t in markers])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )


def _ids(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


# ---------------------------------------------------------------------------------------------- loop


def _loop(model: Any, sample: Callable[[np.random.Generator], list[tuple[list[int], int]]], pad: int,
          settings: TrainSettings, what: str) -> list[float]:
    """AdamW with warm-up and cosine decay; ``sample`` gives a batch of (ids, first supervised index - 1)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, settings.threads))
    torch.manual_seed(settings.seed)
    rng = np.random.Generator(np.random.PCG64(settings.seed))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < settings.warmup:
            return settings.lr * (step + 1) / settings.warmup
        frac = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
        return settings.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    losses: list[float] = []
    model.train()
    try:
        for step in range(settings.steps):
            seqs = sample(rng)
            width = max(len(s) for s, _ in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            labels = torch.full((len(seqs), width), -100, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, (s, first) in enumerate(seqs):
                ids[r, : len(s)] = torch.tensor(s)
                mask[r, : len(s)] = 1
                labels[r, first + 1: len(s)] = torch.tensor(s[first + 1:])  # HF shifts labels inside
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if step % 50 == 0 or step == settings.steps - 1:
                losses.append(float(loss.detach()))
                if step % 250 == 0 or step == settings.steps - 1:
                    log.info("%s: step %d/%d loss %.4f", what, step + 1, settings.steps, losses[-1])
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return losses


# ---------------------------------------------------------------------------------------------- stage 1


def train_backbone(facts: pd.DataFrame, tokenizer: Any, settings: TrainSettings, arch: Architecture,
                   max_positions: int = 512) -> tuple[Any, list[float]]:
    """Stage 1: a Llama trained from scratch on the text of every fact."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    seqs = [([tokenizer.bos_token_id] + _ids(tokenizer, f"{p} {a}") + [tokenizer.eos_token_id], 0)
            for p, a in zip(facts["prompt"], facts["attribute"], strict=True)]
    torch.manual_seed(settings.seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=arch.hidden, intermediate_size=arch.intermediate,
        num_hidden_layers=arch.layers, num_attention_heads=arch.heads, num_key_value_heads=arch.heads,
        max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        rope_theta=10000.0, attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(cfg)
    log.info("backbone: %d parameters, vocab %d, %d text sequences", sum(p.numel() for p in model.parameters()),
             cfg.vocab_size, len(seqs))

    def sample(rng: np.random.Generator) -> list[tuple[list[int], int]]:
        return [seqs[int(i)] for i in rng.integers(0, len(seqs), settings.batch)]

    return model, _loop(model, sample, tokenizer.pad_token_id, settings, "backbone")


# ---------------------------------------------------------------------------------------------- stage 2


def extend_embeddings(backbone: Any, n_new: int, seed: int) -> Any:
    """The backbone with ``n_new`` new (tied) embedding rows, drawn like the backbone's own (mean and std of
    its word embeddings), seeded."""
    import torch

    old = backbone.get_input_embeddings().weight.detach()
    n_old = old.shape[0]
    backbone.resize_token_embeddings(n_old + n_new, mean_resizing=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = backbone.get_input_embeddings().weight
        w[n_old:] = old.mean(0) + old.std() * torch.randn(n_new, old.shape[1], generator=g)
    backbone.tie_weights()
    return backbone


def adapt_to_speech(backbone: Any, facts: pd.DataFrame, corpus: pd.DataFrame, tokenizer: Any,
                    settings: TrainSettings, mix: SpeechMix) -> tuple[Any, list[float]]:
    """Stage 2: ``backbone`` (already extended to ``tokenizer``'s vocabulary) continued on speech -> text,
    interleaved speech -> text and text sequences (module docstring). ``corpus`` holds the trained speech."""
    from factrace.speechlm.prompts import markers_from_tokenizer, speech_prompt_ids, text_prompt_ids

    markers = markers_from_tokenizer(tokenizer)
    by_id = facts.set_index("known_id")
    answers = {int(k): _ids(tokenizer, " " + str(a)) for k, a in zip(facts["known_id"], facts["attribute"],
                                                                   strict=True)}
    text = []
    for kid, prompt in zip(facts["known_id"], facts["prompt"], strict=True):
        tp = text_prompt_ids(tokenizer, str(prompt), markers)
        text.append((tp.ids + answers[int(kid)] + [markers.eos], tp.n_prefix - 1))
    speech = [(int(r.known_id), list(r.units), list(r.cut_words), list(r.cut_units)) for r in corpus.itertuples()]
    words = {int(k): str(p).split() for k, p in by_id["prompt"].items()}
    n_units = markers.n_units
    log.info("speech adaptation: %d text sequences, %d speech renderings of %d facts", len(text), len(speech),
             corpus["known_id"].nunique())

    def augment(units: list[int], rng: np.random.Generator) -> list[int]:
        u = np.asarray(units)
        keep = rng.random(u.size) >= mix.p_del
        if keep.sum() < max(1, u.size // 2):
            keep[:] = True
        u = u[keep]
        sub = rng.random(u.size) < mix.p_sub
        return [int(x) for x in np.where(sub, rng.integers(0, n_units, u.size), u)]

    n_text = max(1, round(settings.batch * mix.text_fraction)) if text else 0
    n_inter = round(settings.batch * mix.interleaved_fraction)

    def sample(rng: np.random.Generator) -> list[tuple[list[int], int]]:
        seqs = [text[int(i)] for i in rng.integers(0, len(text), n_text)]
        for j, i in enumerate(rng.integers(0, len(speech), settings.batch - n_text)):
            kid, units, cut_words, cut_units = speech[int(i)]
            rest = answers[kid]
            c = len(cut_words) - 1
            if j < n_inter and len(cut_words) > 1:
                c = int(rng.integers(0, len(cut_words) - 1))  # a cut before the last word
                units = units[: cut_units[c]]
                rest = _ids(tokenizer, " ".join(words[kid][cut_words[c]:])) + rest
            ids = speech_prompt_ids(augment(units, rng), markers)
            seqs.append((ids + rest + [markers.eos], len(ids) - 1))  # supervise what follows [Text]
        return seqs

    return backbone, _loop(backbone, sample, tokenizer.pad_token_id, settings, "speech")
