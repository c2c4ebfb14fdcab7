"""Does a greedy generation state the expected attribute? Pure string functions, no model.

The paper (following ROME's Known-1000 filtering) keeps a fact when the model's greedy continuation of the
prompt gives the attribute exactly or a close variant: for "The capital of Italy is", "Rome" is an exact
answer, "the city of Rome" is a close variant. :func:`classify` makes that decision reproducible.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Match = Literal["exact", "partial", "none"]

ARTICLES: frozenset[str] = frozenset({"the", "a", "an"})

# A sentence ends at ". ", "! ", "? " (or at the end of the text); a line at a newline; a leaked special
# token such as "<|im_end|>" ends the text too (decoding with skip_special_tokens should have removed it).
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n|\r|<\|")
# The first clause of a sentence ends at , ; : ( or the word "and".
_CLAUSE_END = re.compile(r"[,;:(]|\sand(?=\s|$)", flags=re.IGNORECASE)


def normalise(text: str) -> str:
    """Normalise ``text`` for comparison.

    Steps, in order:

    1. lowercase;
    2. Unicode NFKD decomposition and removal of combining marks (accents): "Zürich" -> "zurich",
       "São Paulo" -> "sao paulo"; compatibility forms are unfolded ("ﬁ" -> "fi", "²" -> "2");
    3. every character that is not a letter or digit (punctuation, symbols, whitespace) becomes a space:
       "7-Eleven" -> "7 eleven", "d'Ivoire" -> "d ivoire";
    4. runs of whitespace collapse to one space, leading/trailing space is removed;
    5. leading articles ("the", "a", "an") are dropped, as long as another word remains: "The Hague" -> "hague",
       "the city of Rome" -> "city of rome", but "The" alone stays "the".

    The function is idempotent: ``normalise(normalise(x)) == normalise(x)``.
    """
    s = text
    for _ in range(8):  # one pass suffices in practice; iterate to a fixed point for exotic code points
        nxt = _normalise_once(s)
        if nxt == s:
            break
        s = nxt
    return s


def _normalise_once(text: str) -> str:
    s = unicodedata.normalize("NFKD", text.lower())
    # lowercase again: decomposition can expose an uppercase base letter (e.g. from a compatibility form)
    s = "".join(c for c in s if not unicodedata.combining(c)).lower()
    s = "".join(c if c.isalnum() else " " for c in s)
    words = s.split()
    while len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    return " ".join(words)


def first_sentence(generation: str) -> str:
    """The generation up to its first line break, sentence end (". ", "! ", "? ", final ".") or special token.

    Leading whitespace is skipped first, so a continuation that starts with a space or newline is not empty.
    Abbreviations are not special-cased: "St. Louis" is cut after "St".
    """
    text = generation.lstrip()
    m = _SENTENCE_END.search(text)
    return (text[: m.start()] if m else text).rstrip()


def first_clause(sentence: str) -> str:
    """The sentence up to its first , ; : ( or the word " and "."""
    m = _CLAUSE_END.search(sentence)
    return (sentence[: m.start()] if m else sentence).strip()


def clause_prefixes(sentence: str) -> list[str]:
    """Every prefix of ``sentence`` that ends at a clause boundary (, ; : ( " and ") or at its end.

    The first element is :func:`first_clause`; the last is the whole sentence.
    """
    cuts = [m.start() for m in _CLAUSE_END.finditer(sentence)] + [len(sentence)]
    return [sentence[:c].strip() for c in cuts]


def _protect_attribute(generation: str, attribute: str) -> str:
    """Blank sentence punctuation inside occurrences of the attribute ("J.K. Rowling", "St. Louis")."""
    attr = attribute.strip()
    if not attr or not any(ch in attr for ch in ".!?"):
        return generation
    plain = re.sub(r"[.!?]", " ", attr)
    return re.sub(re.escape(attr), lambda _m: plain, generation, flags=re.IGNORECASE)


def classify(generation: str, attribute: str) -> Match:
    """Classify a greedy continuation against the expected attribute: "exact", "partial" or "none".

    Rule (only the first sentence of the generation counts, see :func:`first_sentence`; both sides are
    compared after :func:`normalise`, so case, accents, punctuation and a leading "the"/"a"/"an" are ignored):

    - ``"exact"``: the first clause of the first sentence (cut at , ; : ( or " and ") normalises to exactly the
      normalised attribute. "Rome", " Rome.", "Rome, Italy", "the Rome" and "Rome and Milan" are all exact for
      "Rome": the answer comes first and alone in its clause. So that attributes which themselves contain a
      clause boundary stay exact ("Trinidad and Tobago", "Washington, D.C."), a longer prefix of the sentence
      that ends at a clause boundary also counts when it normalises to the attribute.
    - ``"partial"``: otherwise, the normalised attribute occurs as whole words inside the normalised first
      sentence: "the city of Rome", "located in Rome" (but not "Romeo", nor "Rome" in a second sentence).
    - ``"none"``: otherwise, or when the attribute normalises to the empty string.

    Degenerate case: an attribute that is only an article ("A") can be missed inside a sentence, because
    :func:`normalise` drops the sentence's leading article.

    Sentence punctuation inside the attribute ("J.K. Rowling") does not end the sentence where the attribute
    occurs in the generation. Aliases are not resolved ("USA" does not match "United States").

    Note: this makes "Rome, Italy" *exact* (the brief's examples listed it as a close variant); kept/dropped is
    the same either way, only the label differs.
    """
    target = normalise(attribute)
    if not target:
        return "none"
    sentence = first_sentence(_protect_attribute(generation, attribute))
    if any(normalise(p) == target for p in clause_prefixes(sentence)):
        return "exact"
    if f" {target} " in f" {normalise(sentence)} ":
        return "partial"
    return "none"
