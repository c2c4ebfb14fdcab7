"""Stage 2's training data: every sequence of the speech adaptation as a table row, and its token ids.

:func:`training_sequences` lists them (saved with the checkpoint as ``train_sequences.parquet``),
:func:`check_separation` proves from that table that no sequence with speech carries a text-only fact's answer,
and :func:`sequence_ids` assembles one row's ids (SpiritLM's markers, switching modality at word boundaries).
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """``text``'s ids without special tokens."""
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def training_sequences(facts: pd.DataFrame, corpus: pd.DataFrame, transcripts: bool = False) -> pd.DataFrame:
    """Every stage-2 training sequence, one row each (the sampler draws from this table; it is saved with the
    checkpoint so that what the model was trained on can be checked): kind, known_id, speech_set, corpus_row
    (row of ``corpus``, whose rows of role ``train`` are used; -1: text only), w0, w1 (words ``[w0, w1)`` of the prompt are spoken, the others are
    text), answer (the attribute and ``</s>`` follow).

    * ``text``: ``<s> [Text] prompt answer </s>``, every fact.
    * ``s2t``: ``<s> [Speech] units [Text] answer </s>``, heard facts (SpiritLM's S->T prompt).
    * ``interleaved``: ``<s> [Text] words < w0 [Speech] units of words w0..w1-1 [Text] words >= w1 answer </s>``,
      heard facts, every ``0 <= w0 < w1 <= n`` but the whole prompt (SpiritLM's word-level interleaving).
    * ``prefix``: the same without the answer, ending with the prompt's last word, ``w1 < n``, and the spoken
      words overlap the subject: heard and text-only facts. A text-only fact's speech is only here, so its
      subject and attribute never occur in one sequence with speech (:func:`check_separation`).
    * ``transcript`` (only with ``transcripts``): ``<s> [Speech] units of words w0..w1-1 [Text] those words </s>``,
      speech followed by its own transcript (ASR in the LM's format), heard and text-only facts, every span that
      overlaps the subject; no answer, so the separation holds.
    """
    sets = facts.set_index("known_id")["speech_set"]
    rows = [("text", int(k), str(sets.loc[k]), -1, 0, 0, True) for k in facts["known_id"]]
    for i, r in enumerate(corpus.itertuples()):
        kid = int(r.known_id)
        sset = str(sets.loc[kid])
        if sset == "never_heard" or getattr(r, "role", "train") != "train":
            continue
        n = len(r.word_idx)
        sw0, sw1 = (int(x) for x in r.subj_words)
        if sset == "heard":
            rows.append(("s2t", kid, sset, i, 0, n, True))
            rows += [("interleaved", kid, sset, i, a, b, True) for a in range(n) for b in range(a + 1, n + 1)
                     if (a, b) != (0, n)]
        rows += [("prefix", kid, sset, i, a, b, False) for a in range(n) for b in range(a + 1, n)
                 if a < sw1 and b > sw0]
        if transcripts:
            rows += [("transcript", kid, sset, i, a, b, False) for a in range(n) for b in range(a + 1, n + 1)
                     if a < sw1 and b > sw0]
    return pd.DataFrame(rows, columns=["kind", "known_id", "speech_set", "corpus_row", "w0", "w1", "answer"])


def check_separation(facts: pd.DataFrame, sequences: pd.DataFrame) -> None:
    """Raise when a sequence with speech carries a text-only or never-heard fact's answer, or speaks a
    never-heard fact."""
    sets = facts.set_index("known_id")["speech_set"]
    speech = sequences[sequences["corpus_row"] >= 0]
    bad = speech[speech["known_id"].map(sets).isin(["text_only", "never_heard"])
                 & (speech["answer"] | speech["known_id"].map(sets).eq("never_heard"))]
    if len(bad):
        raise ValueError(f"{len(bad)} training sequences with speech break the separation, e.g. "
                         f"{bad.iloc[0].to_dict()}")


def sequence_ids(row: Any, words: list[str], answer: list[int], corpus_row: Any, tokenizer: Any,
                 markers: Any, units: list[int] | None = None) -> tuple[list[int], int]:
    """Token ids of one :func:`training_sequences` row and the index whose next token is the first supervised
    one (the ``[Text]`` after the speech; for ``text``, the prompt's ``[Text]``). ``units`` replaces the
    row's units (augmented); word boundaries are then taken proportionally."""
    bos = [] if markers.bos is None else [markers.bos]
    if row.kind == "text":
        ids = bos + [markers.text] + token_ids(tokenizer, " ".join(words)) + answer + [markers.eos]
        return ids, len(bos)
    orig = list(corpus_row.units)
    n = len(corpus_row.word_idx)
    u0 = 0 if row.w0 == 0 else int(corpus_row.word_start[row.w0])
    u1 = len(orig) if row.w1 == n else int(corpus_row.word_end[row.w1 - 1])
    if units is not None and len(units) != len(orig):
        f = len(units) / max(1, len(orig))
        u0, u1 = round(u0 * f), max(round(u1 * f), round(u0 * f) + 1)
    span = (orig if units is None else units)[u0:u1]
    widx = [int(i) for i in corpus_row.word_idx]  # spoken word j is the prompt's whitespace word widx[j]
    if row.kind == "transcript":
        ids = bos + [markers.speech] + [markers.unit_id(u) for u in span] + [markers.text]
        spoken = " ".join(words[widx[row.w0]: widx[row.w1 - 1] + 1])
        return ids + token_ids(tokenizer, spoken) + [markers.eos], len(ids) - 1
    before = [markers.text] + token_ids(tokenizer, " ".join(words[: widx[row.w0]])) if row.w0 > 0 else []
    ids = bos + before + [markers.speech] + [markers.unit_id(u) for u in span] + [markers.text]
    first = len(ids) - 1
    ids += token_ids(tokenizer, " ".join(words[widx[row.w1 - 1] + 1:])) if row.w1 < n else []
    if row.answer:
        ids += answer + [markers.eos]
    return ids, first
