"""Text normalisation for CTC forced alignment (paper, Appendix A, "Text preprocessing for CTC").

The CTC alphabet of ``facebook/hubert-large-ls960-ft`` is upper-case A-Z, the apostrophe and ``|`` as the word
boundary. :func:`normalise` turns a prompt into *spoken words* in that alphabet and keeps, for every spoken word,
the character span ``[char_start, char_end)`` of the original text it was read from, so that aligned spoken
words can be mapped back to the model's text tokens (the counts differ both ways: "1990" gives two spoken words,
"," gives none).

Rules (deterministic, documented choices):

- Written tokens are found left to right: money (``$5``, ``£3.50``, ``€ 10``), numbers (``1990``, ``1,000``,
  ``3.5``, ``21st``, ``1990s``), words (unicode letters with internal apostrophes: ``O'Brien``, ``Rome's``) and
  the symbols ``% & + @ ° #``. Everything else (spaces, hyphens, dots, commas, quotes, brackets) separates
  words and is not spoken, so "7-Eleven" -> SEVEN|ELEVEN.
- Numbers: a bare four-digit integer in 1100-1999 or 2010-2099 is read as a year, in pairs
  ("1990" -> NINETEEN NINETY, "1905" -> NINETEEN OH FIVE, "1900" -> NINETEEN HUNDRED), as TTS front ends do;
  2000-2009 and all other integers are cardinals without "and" ("2005" -> TWO THOUSAND FIVE,
  "1,234" -> ONE THOUSAND TWO HUNDRED THIRTY FOUR). Decimals: "3.14" -> THREE POINT ONE FOUR. Leading zeros
  ("007") are read digit by digit. Ordinals: "21st" -> TWENTY FIRST. Decades: "1990s" -> NINETEEN NINETIES.
- Money: "$5" -> FIVE DOLLARS, "$1" -> ONE DOLLAR, "$5.50" -> FIVE DOLLARS FIFTY CENTS (likewise pounds/pence,
  euros/cents).
- Symbols: % PERCENT, & AND, + PLUS, @ AT, ° DEGREES, # NUMBER.
- Letters: accents are stripped (Zürich -> ZURICH, São -> SAO), a few letters are transliterated
  (ß SS, æ AE, ø O, œ OE, ł L, đ/ð D, þ TH), the typographic apostrophe becomes "'"; letters that still fall
  outside A-Z (e.g. Cyrillic, CJK) are dropped, and a word left empty is listed in ``Normalised.dropped``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

SEPARATOR = "|"
CTC_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand")]
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
    "twelve": "twelfth",
}
_SYMBOLS = {"%": ["percent"], "&": ["and"], "+": ["plus"], "@": ["at"], "°": ["degrees"], "#": ["number"]}
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents")}
_TRANSLIT = {
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH", "ı": "i", "’": "'", "‘": "'", "ʼ": "'",
}

_LETTER = r"(?:[^\W\d_]|[\u0300-\u036f])"
_APOS = r"['’ʼ]"
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_TOKEN = re.compile(
    rf"(?P<money>[$£€]\s?{_NUMBER})"
    rf"|(?P<num>{_NUMBER})(?P<suffix>(?:st|nd|rd|th|s)(?!{_LETTER}))?"
    rf"|(?P<word>{_LETTER}+(?:{_APOS}{_LETTER}+)*)"
    r"|(?P<sym>[%&+@°#])"
)


class NormalisationError(ValueError):
    """A text has no spoken content at all in the CTC alphabet."""


@dataclass(frozen=True)
class SpokenWord:
    """One word of the CTC transcript and the span of the original text it was read from."""

    text: str  # in the CTC alphabet, e.g. "NINETEEN"
    char_start: int  # [char_start, char_end) in the original text
    char_end: int
    written_index: int  # index of the written token (several spoken words may share one)


@dataclass(frozen=True)
class Normalised:
    """The result of :func:`normalise`: spoken words in order, each tied to a character span."""

    original: str
    words: tuple[SpokenWord, ...]
    dropped: tuple[tuple[int, int], ...] = ()  # spans of written tokens that have no spoken form
    separator: str = SEPARATOR

    @property
    def transcript(self) -> str:
        """The CTC transcript, words joined by the separator (``THE|CAPITAL|OF|ROME``)."""
        return self.separator.join(w.text for w in self.words)

    @property
    def texts(self) -> list[str]:
        return [w.text for w in self.words]

    def words_in_span(self, start: int, end: int) -> list[int]:
        """Indices of the spoken words whose source span overlaps ``[start, end)`` of the original text."""
        return [i for i, w in enumerate(self.words) if w.char_start < end and w.char_end > start]


# ---------------------------------------------------------------- numbers


def cardinal(n: int) -> list[str]:
    """English cardinal without "and": 1234 -> one thousand two hundred thirty four."""
    if n < 0:
        return ["minus", *cardinal(-n)]
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return [_ONES[hundreds], "hundred"] + (cardinal(rest) if rest else [])
    for value, name in _SCALES:
        if n >= value:
            if n >= value * 1000:  # beyond the largest scale: digit by digit
                return [_ONES[int(d)] for d in str(n)]
            high, rest = divmod(n, value)
            return cardinal(high) + [name] + (cardinal(rest) if rest else [])
    raise AssertionError(n)  # pragma: no cover


def year(n: int) -> list[str]:
    """Year reading in pairs: 1990 -> nineteen ninety; 1905 -> nineteen oh five; 1900 -> nineteen hundred."""
    high, low = divmod(n, 100)
    if low == 0:
        return cardinal(high) + ["hundred"]
    if low < 10:
        return cardinal(high) + ["oh", _ONES[low]]
    return cardinal(high) + cardinal(low)


def _is_year(digits: str) -> bool:
    if len(digits) != 4 or not digits.isdigit():
        return False
    n = int(digits)
    return 1100 <= n <= 1999 or 2010 <= n <= 2099


def _ordinal_word(word: str) -> str:
    if word in _ORDINAL_IRREGULAR:
        return _ORDINAL_IRREGULAR[word]
    if word.endswith("y"):
        return word[:-1] + "ieth"
    return word + "th"


def _plural_word(word: str) -> str:
    if word.endswith("y"):
        return word[:-1] + "ies"
    if word.endswith(("x", "s")):
        return word + "es"
    return word + "s"


def number_words(text: str, suffix: str = "") -> list[str]:
    """Spell out a number as written ("1,000", "3.14", "1990", "007") with an optional st/nd/rd/th/s suffix."""
    intpart, _, frac = text.replace(",", "").partition(".")
    if len(intpart) > 1 and intpart.startswith("0"):
        words = [_ONES[int(d)] for d in intpart]
    elif not frac and "," not in text and _is_year(intpart):
        words = year(int(intpart))
    else:
        words = cardinal(int(intpart))
    if frac:
        words += ["point"] + [_ONES[int(d)] for d in frac]
    if suffix in ("st", "nd", "rd", "th"):
        words[-1] = _ordinal_word(words[-1])
    elif suffix == "s":
        words[-1] = _plural_word(words[-1])
    return words


def money_words(text: str) -> list[str]:
    symbol, amount = text[0], text[1:].strip()
    one, many, sub_one, sub_many = _CURRENCY[symbol]
    intpart, _, frac = amount.replace(",", "").partition(".")
    whole = int(intpart)
    words = cardinal(whole) + [one if whole == 1 else many]
    if frac:
        if len(frac) == 2:
            cents = int(frac)
            if cents:
                words += cardinal(cents) + [sub_one if cents == 1 else sub_many]
        else:  # unusual precision: read as a decimal number of the main unit
            words = number_words(amount) + [many]
    return words


# ---------------------------------------------------------------- letters


def to_ctc_letters(word: str) -> str:
    """Strip accents, transliterate, upper-case; keep only the CTC alphabet (A-Z and the apostrophe)."""
    word = "".join(_TRANSLIT.get(ch, ch) for ch in word)
    decomposed = unicodedata.normalize("NFKD", word)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()
    return "".join(ch for ch in stripped if ch in CTC_ALPHABET).strip("'")


# ---------------------------------------------------------------- main entry


def normalise(text: str, separator: str = SEPARATOR) -> Normalised:
    """Normalise ``text`` for CTC; each spoken word keeps the character span of the text it came from."""
    words: list[SpokenWord] = []
    dropped: list[tuple[int, int]] = []
    for index, match in enumerate(_TOKEN.finditer(text)):
        start, end = match.span()
        kind = match.lastgroup if match.lastgroup != "suffix" else "num"
        if kind == "money":
            spoken = money_words(match.group("money"))
        elif kind == "num":
            spoken = number_words(match.group("num"), match.group("suffix") or "")
        elif kind == "word":
            spoken = [match.group("word")]
        else:
            spoken = list(_SYMBOLS[match.group("sym")])
        pieces = [p for p in (to_ctc_letters(w) for w in spoken) if p]
        if not pieces:
            dropped.append((start, end))
        for piece in pieces:
            words.append(SpokenWord(piece, start, end, index))
    return Normalised(text, tuple(words), tuple(dropped), separator)


def transcript(text: str, separator: str = SEPARATOR) -> str:
    """The CTC transcript of ``text`` (``"The 1990s"`` -> ``"THE|NINETEEN|NINETIES"``)."""
    return normalise(text, separator).transcript
