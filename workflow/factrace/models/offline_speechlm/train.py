"""The two training stages of the offline speech LM: a text backbone, then its speech adaptation.

* Stage 1, :func:`train_backbone`: a Llama trained from scratch on ``<s> prompt answer </s>`` of every fact
  (traced and extra), loss on every token after ``<s>``: a plain text LM (loader ``hf``). Every fact is learnt
  here, in text.
* Stage 2, :func:`adapt_to_speech`: the backbone's weights with new embedding rows for ``[Text]``,
  ``[Speech]`` and ``[Hu0..k-1]`` (the vocabulary grows, the word ids stay), continued on the sequences of
  :func:`training_sequences`: every fact's text (so text recall stays), the *heard* facts' speech -> text and
  word-level interleaved speech/text with the answer (SpiritLM's recipe), and interleaved sequences that end
  before the answer for heard and *text-only* facts (so a text-only fact's subject is heard, never with its
  answer). Light unit noise (substitution, deletion) augments the speech. Optionally (:class:`SpeechMix`) only
  the new embeddings and the lowest layers are trained, and each spoken word's last unit is pulled towards the
  backbone's own hidden state at that word of the transcript (``align_weight``): the speech LM then reads speech
  as the backbone's words, and the backbone's upper layers, unchanged, recall what they learnt in text.
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

from factrace.models.offline_speechlm.sequences import token_ids

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
    """Stage 2's batch composition (shares of the sequence kinds of :func:`training_sequences`), augmentation
    and what is trained."""

    text_fraction: float = 0.2  # ``text``: every fact's text, so text recall stays
    s2t_fraction: float = 0.3  # ``s2t``: heard facts' whole spoken prompt, then the answer
    interleaved_fraction: float = 0.3  # ``interleaved``: heard facts, speech and text switching at words
    prefix_fraction: float = 0.2  # ``prefix``: heard and text-only facts, interleaved, ending before the answer
    transcript_fraction: float = 0.0  # ``transcript``: heard and text-only facts' speech, then its transcript
    p_sub: float = 0.04  # unit-noise augmentation: substitute a unit
    p_del: float = 0.02  # ... delete a unit
    trainable_layers: int | None = None  # None: every weight; k: the new embeddings and the k lowest layers only
    align_weight: float = 0.0  # > 0: each spoken word's last unit is pulled towards the backbone's state ...
    align_layer: int = 1  # ... after this many layers at that word of the prompt's text (its transcript)

    @property
    def transcripts(self) -> bool:
        """Whether the training table holds ``transcript`` sequences (only when they are drawn)."""
        return self.transcript_fraction > 0

    def shares(self) -> dict[str, float]:
        return {"text": self.text_fraction, "s2t": self.s2t_fraction, "interleaved": self.interleaved_fraction,
                "prefix": self.prefix_fraction, "transcript": self.transcript_fraction}


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


# ---------------------------------------------------------------------------------------------- loop


def _loop(model: Any, sample: Callable[[np.random.Generator], list[tuple]], pad: int,
          settings: TrainSettings, what: str, align: tuple[int, float] | None = None) -> list[float]:
    """AdamW with warm-up and cosine decay; ``sample`` gives a batch of (ids, first supervised index - 1) or
    (ids, first, targets): with ``align = (layer, weight)``, ``targets`` = [(position, vector)] adds ``weight``
    x the mean squared error of the hidden state after ``layer`` layers at ``position`` to ``vector``, relative
    to the vectors' mean square."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, settings.threads))
    torch.manual_seed(settings.seed)
    rng = np.random.Generator(np.random.PCG64(settings.seed))
    trained = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trained if p.dim() >= 2 and not getattr(p, "no_weight_decay", False)]
    no_decay = [p for p in trained if p.dim() < 2 or getattr(p, "no_weight_decay", False)]
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
            width = max(len(s[0]) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            labels = torch.full((len(seqs), width), -100, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, (s, first, *_) in enumerate(seqs):
                ids[r, : len(s)] = torch.tensor(s)
                mask[r, : len(s)] = 1
                labels[r, first + 1: len(s)] = torch.tensor(s[first + 1:])  # HF shifts labels inside
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            out = model(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=align is not None)
            loss = out.loss
            pairs = [(r, p, v) for r, x in enumerate(seqs) if len(x) > 2 for p, v in x[2]]
            if align is not None and pairs:
                h = out.hidden_states[align[0]]
                got = torch.stack([h[r, p] for r, p, _ in pairs])
                want = torch.stack([v for _, _, v in pairs])
                loss = loss + align[1] * ((got - want) ** 2).mean() / (want**2).mean()
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

    seqs = [([tokenizer.bos_token_id] + token_ids(tokenizer, f"{p} {a}") + [tokenizer.eos_token_id], 0)
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


def freeze_backbone(model: Any, n_words: int, trainable_layers: int) -> None:
    """Train only the new embedding rows (markers, units) and the ``trainable_layers`` lowest layers: the word
    embeddings (rows < ``n_words``, tied with the output layer), the upper layers and the final norm keep the
    backbone's weights."""
    import torch

    for p in model.parameters():
        p.requires_grad_(False)
    emb = model.get_input_embeddings().weight
    emb.requires_grad_(True)
    emb.no_weight_decay = True  # decay would shrink the frozen word rows
    mask = torch.zeros_like(emb)
    mask[n_words:] = 1.0
    emb.register_hook(lambda g: g * mask)
    for layer in model.model.layers[:trainable_layers]:
        for p in layer.parameters():
            p.requires_grad_(True)


def adapt_to_speech(backbone: Any, facts: pd.DataFrame, corpus: pd.DataFrame, tokenizer: Any,
                    settings: TrainSettings, mix: SpeechMix,
                    sequences: pd.DataFrame | None = None) -> tuple[Any, list[float]]:
    """Stage 2: ``backbone`` (already extended to ``tokenizer``'s vocabulary) continued on the sequences of
    :func:`training_sequences` (``corpus``: the trained speech), drawn by kind with ``mix``'s shares."""
    from factrace.models.offline_speechlm.sequences import check_separation, sequence_ids, training_sequences
    from factrace.speechlm.prompts import markers_from_tokenizer

    markers = markers_from_tokenizer(tokenizer)
    seqs = training_sequences(facts, corpus, mix.transcripts) if sequences is None else sequences
    check_separation(facts, seqs)
    answers = {int(k): token_ids(tokenizer, " " + str(a)) for k, a in zip(facts["known_id"], facts["attribute"],
                                                                   strict=True)}
    words = {int(k): str(p).split() for k, p in zip(facts["known_id"], facts["prompt"], strict=True)}
    rows = list(corpus.itertuples())
    by_kind = {k: g.reset_index(drop=True) for k, g in seqs.groupby("kind")}
    shares = {k: v for k, v in mix.shares().items() if v > 0 and k in by_kind}
    kinds = sorted(shares)
    p_kind = np.array([shares[k] for k in kinds]) / sum(shares.values())
    n_units = markers.n_units
    log.info("speech adaptation: %s sequences (%s), shares %s", len(seqs), seqs["kind"].value_counts().to_dict(),
             {k: round(float(p), 3) for k, p in zip(kinds, p_kind, strict=True)})
    targets = word_states(backbone, tokenizer, facts, mix.align_layer) if mix.align_weight > 0 else {}
    if mix.trainable_layers is not None:
        n_words = tokenizer.convert_tokens_to_ids("[Text]")
        freeze_backbone(backbone, n_words, mix.trainable_layers)

    def augment(units: list[int], rng: np.random.Generator) -> list[int]:
        u = np.asarray(units)
        keep = rng.random(u.size) >= mix.p_del
        if keep.sum() < max(1, u.size // 2):
            keep[:] = True
        u = u[keep]
        sub = rng.random(u.size) < mix.p_sub
        return [int(x) for x in np.where(sub, rng.integers(0, n_units, u.size), u)]

    def sample(rng: np.random.Generator) -> list[tuple[list[int], int]]:
        out = []
        for k in rng.choice(len(kinds), size=settings.batch, p=p_kind):
            table = by_kind[kinds[int(k)]]
            row = table.iloc[int(rng.integers(0, len(table)))]
            kid = int(row.known_id)
            crow = rows[int(row.corpus_row)] if row.corpus_row >= 0 else None
            units = augment(list(crow.units), rng) if crow is not None else None
            ids, first = sequence_ids(row, words[kid], answers[kid], crow, tokenizer, markers, units)
            out.append((ids, first, aligned(row, crow, units, targets[kid]) if targets else []))
        return out

    def aligned(row: Any, crow: Any, units: list[int] | None, target: Any) -> list[tuple[int, Any]]:
        """(position, backbone state) of every whole spoken word of a sequence that starts with speech, and of
        every word of a text sequence."""
        n0 = (markers.bos is not None) + 1  # <s> and [Speech] / [Text]
        if row.kind == "text":
            return [(n0 + int(t), target[1][i]) for i, t in enumerate(target[0])]
        if row.w0 != 0:
            return []
        f = len(units) / max(1, len(crow.units))
        out = []
        for j in range(int(row.w1)):
            p = min(max(round(int(crow.word_end[j]) * f) - 1, 0), len(units) - 1)
            out.append((n0 + p, target[1][int(crow.word_idx[j])]))
        return out

    align = (mix.align_layer, mix.align_weight) if targets else None
    return backbone, _loop(backbone, sample, tokenizer.pad_token_id, settings, "speech", align)


def word_states(model: Any, tokenizer: Any, facts: pd.DataFrame, layer: int) -> dict[int, tuple[list[int], Any]]:
    """Per fact: the index (among the text tokens after ``<s>``) of each whitespace word's last token in
    ``<s> prompt``, and the model's hidden states after ``layer`` layers there (one row per word)."""
    import torch

    out = {}
    with torch.no_grad():
        for kid, prompt in zip(facts["known_id"], facts["prompt"], strict=True):
            enc = tokenizer(str(prompt), return_offsets_mapping=True)
            ids, offs = enc["input_ids"], enc["offset_mapping"]
            h = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0]
            ends, pos = [], 0
            for w in str(prompt).split():
                s = str(prompt).index(w, pos)
                pos = s + len(w)
                toks = [i for i, (a, b) in enumerate(offs) if b > a and a < pos and b > s]
                ends.append(toks[-1])
            start = 1 if ids and ids[0] == tokenizer.bos_token_id else 0
            out[int(kid)] = ([e - start for e in ends], h[ends].clone())
    return out
