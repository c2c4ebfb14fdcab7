"""Per-prompt trace plots label tokens with their decoded text (not byte-level BPE) and speech units with words."""

from __future__ import annotations

import matplotlib.axes
import pandas as pd
import pytest
from factrace.analysis.figures.labels import position_labels, token_label, token_text
from factrace.analysis.figures.traces import prompt_trace_plot


@pytest.mark.parametrize(
    ("token", "text"),
    [
        ("Ã£o", "ão"),  # byte-level BPE: the two UTF-8 bytes of "ã" + "o"
        ("ĠPaulo", " Paulo"),
        ("Ġis", " is"),
        ("Ċ", "\n"),
        ("▁São", " São"),  # SentencePiece
        ("<0x41>", "A"),
        ("Zürich", "Zürich"),  # a word vocabulary's token stays as it is
        ("<s>", "<s>"),
        ("[Hu12]", "[Hu12]"),
    ],
)
def test_token_text(token, text):
    assert token_text(token) == text


def test_labels_strip_spaces_and_add_words_to_speech_units():
    assert [token_label(t) for t in ["ĠS", "Ã£o", "ĠPaulo", "Ġ"]] == ["S", "ão", "Paulo", "␣"]
    labels = position_labels(["<s>", "[Speech]", "[Hu3]", "[Hu9]", "[Hu1]", "[Text]"], [-1, -1, 0, 0, 1, 1],
                             {0: "ĠParis", 1: "Ġis"})
    assert labels == ["<s>", "[Speech]", "[Hu3] Paris", "[Hu9] Paris", "[Hu1] is", "[Text]"]


def _trace(tokens: list[str], tti: list[int], modality: str, subject: tuple[int, int]) -> pd.DataFrame:
    rows = []
    for kind in ("hidden", "mlp", "attn"):
        for layer in range(2):
            for pos, tok in enumerate(tokens):
                rows.append({"known_id": 4, "modality": modality, "kind": kind, "layer": layer, "position": pos,
                             "token": tok, "text_token_index": tti[pos], "p_restored": 0.1 * (pos + layer),
                             "p_clean": 0.9, "p_corrupted": 0.05, "subject_start": subject[0],
                             "subject_end": subject[1], "n_tokens": len(tokens), "n_text_tokens": 3})
    return pd.DataFrame(rows)


@pytest.fixture
def ytick_labels(monkeypatch):
    seen: list[list[str]] = []
    orig = matplotlib.axes.Axes.set_yticklabels

    def spy(self, labels, *a, **k):
        if len(labels):
            seen.append([str(x) for x in labels])
        return orig(self, labels, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_yticklabels", spy)
    return seen


def test_text_prompt_plot_shows_decoded_tokens(tmp_path, ytick_labels):
    tokens = ["The", "ĠS", "Ã£o", "ĠPaulo", "Ġis"]
    prompt_trace_plot(_trace(tokens, list(range(5)), "t2t", (1, 4)), tokens, tmp_path / "t.png", combine="mean")
    assert ytick_labels[0] == ["The", "S*", "ão*", "Paulo*", "is"]


def test_speech_prompt_plot_shows_units_with_their_words(tmp_path, ytick_labels):
    tokens = ["<s>", "[Speech]", "[Hu3]", "[Hu9]", "[Hu1]", "[Text]"]
    df = _trace(tokens, [-1, -1, 0, 1, 1, 2], "s2t", (3, 5))
    prompt_trace_plot(df, tokens, tmp_path / "s.png", combine="mean", text_tokens={0: "ĠThe", 1: "São", 2: "Ġis"})  # a word vocabulary
    assert ytick_labels[0] == ["<s>", "[Speech]", "[Hu3] The", "[Hu9] São*", "[Hu1] São*", "[Text]"]
