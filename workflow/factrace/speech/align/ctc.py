"""CTC forced alignment (paper, Appendix A): trellis, backtrack, merge repeats, merge words, frames -> seconds.

Pure numpy functions. Conventions:

- ``emission`` is a (T, C) array of per-frame log-probabilities (log-softmax over the C CTC labels).
- ``tokens`` are the N label ids of the transcript, word separators included (``THE|CAPITAL`` -> 11 ids).
- The paper's recurrence K(t+1, j+1) = max(K(t, j) p(t+1, c_{j+1}), K(t, j+1) p(t+1, repeat)) (Viterbi, log
  space) is run over the standard CTC states ``blank, c_1, blank, c_2, ..., c_N, blank`` (2N+1 states), so
  that "no label change" is either a blank or a repeat of the current label, and two identical neighbouring
  labels ("LL") need a blank between them, as CTC decoding requires; with one state per label (the
  simplified trellis) a run of L frames could be split anywhere between the two L's. ``trellis`` returns the
  (T, 2N+1) state matrix; ``label_trellis`` folds it to (T, N+1) (column j: j labels emitted) for plots.
- Frames before the first label are leading silence and belong to no segment; a label's segment runs from the
  frame at which it is first emitted up to (not including) the frame at which the next label is emitted, so
  blanks after a label (and trailing silence after the last one) are counted in its segment, as in the paper.
- Segment ``end`` indices are exclusive. Scores are average per-frame probabilities (paper, footnote 4).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class AlignmentError(ValueError):
    """A transcript cannot be aligned to the audio (the caller records a skip with this reason)."""


@dataclass(frozen=True)
class PathPoint:
    token_index: int  # index into the transcript tokens
    frame: int
    prob: float  # probability of what the frame emitted on the path (label on advance, blank-or-repeat on stay)


@dataclass(frozen=True)
class Segment:
    label: str
    start: int  # first frame (inclusive)
    end: int  # last frame + 1
    score: float  # mean per-frame probability

    @property
    def length(self) -> int:
        return self.end - self.start


def tokens_for(transcript: str, vocab: dict[str, int]) -> list[int]:
    """Label ids of ``transcript`` (one per character); characters outside the vocabulary raise AlignmentError."""
    missing = sorted({ch for ch in transcript if ch not in vocab})
    if missing:
        raise AlignmentError(f"characters outside the CTC vocabulary: {missing!r} in {transcript!r}")
    if not transcript:
        raise AlignmentError("empty transcript: nothing to align")
    return [vocab[ch] for ch in transcript]


def _check(emission: np.ndarray, tokens: Sequence[int], blank: int) -> np.ndarray:
    emission = np.asarray(emission, dtype=np.float64)
    if emission.ndim != 2:
        raise AlignmentError(f"emission must be (T, C), got shape {emission.shape}")
    n_frames, n_labels = emission.shape
    if len(tokens) == 0:
        raise AlignmentError("empty transcript: nothing to align")
    if len(tokens) > n_frames:
        raise AlignmentError(f"{len(tokens)} labels cannot fit in {n_frames} frames (audio too short)")
    if not np.all(np.isfinite(emission) | (emission == -np.inf)):
        raise AlignmentError("emission contains NaN or +inf")
    bad = [t for t in tokens if not 0 <= t < n_labels]
    if bad or not 0 <= blank < n_labels:
        raise AlignmentError(f"label ids {bad or [blank]} outside the emission's {n_labels} labels")
    if blank in tokens:
        raise AlignmentError("the blank label cannot appear in the transcript")
    return emission


def _states(tokens: Sequence[int], blank: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the 2N+1 CTC states (blank, c_1, blank, c_2, ..., c_N, blank) and where a skip is allowed."""
    n = len(tokens)
    labels = np.full(2 * n + 1, blank, dtype=np.int64)
    labels[1::2] = tokens
    skip = np.zeros(2 * n + 1, dtype=bool)  # state s may be entered from s-2 (label differs from the previous)
    for j in range(1, n):
        skip[2 * j + 1] = tokens[j] != tokens[j - 1]
    return labels, skip


def min_frames(tokens: Sequence[int]) -> int:
    """Fewest frames that can hold ``tokens``: one per label plus a blank between identical neighbours."""
    return len(tokens) + sum(1 for a, b in itertools.pairwise(tokens) if a == b)


def trellis(emission: np.ndarray, tokens: Sequence[int], blank: int = 0) -> np.ndarray:
    """The (T, 2N+1) Viterbi trellis over CTC states (see the module docstring)."""
    emission = _check(emission, tokens, blank)
    if min_frames(tokens) > emission.shape[0]:
        raise AlignmentError(
            f"{len(tokens)} labels (+ blanks between repeats) cannot fit in {emission.shape[0]} frames "
            "(audio too short)"
        )
    labels, skip = _states(tokens, blank)
    n_frames, n_states = emission.shape[0], labels.size
    em = emission[:, labels]  # (T, S)
    k = np.full((n_frames, n_states), -np.inf)
    k[0, 0] = em[0, 0]
    k[0, 1] = em[0, 1]
    for t in range(1, n_frames):
        prev = k[t - 1]
        best = prev.copy()  # stay: blank stays blank, a label repeats ("no label change")
        best[1:] = np.maximum(best[1:], prev[:-1])  # advance by one state
        best[2:] = np.where(skip[2:], np.maximum(best[2:], prev[:-2]), best[2:])  # skip an optional blank
        k[t] = best + em[t]
    return k


def label_trellis(k: np.ndarray) -> np.ndarray:
    """(T, N+1) view of the state trellis for plots: column j = best score with j labels emitted by frame t."""
    out = np.empty((k.shape[0], (k.shape[1] + 1) // 2))
    out[:, 0] = k[:, 0]
    out[:, 1:] = np.maximum(k[:, 1::2], k[:, 2::2])
    return out


def backtrack(k: np.ndarray, emission: np.ndarray, tokens: Sequence[int], blank: int = 0) -> list[PathPoint]:
    """The most likely path, followed back from the last frame (ending on the last label or the blank after it).

    Returned in frame order; frames of leading silence (before the first label) are left out. Each point says
    which transcript label the frame belongs to (a blank belongs to the label before it) and the probability
    of what it emitted. Ties prefer staying, then advancing by one state.
    """
    emission = _check(emission, tokens, blank)
    labels, skip = _states(tokens, blank)
    n_frames, n_states = k.shape
    s = n_states - 1 if k[-1, -1] >= k[-1, -2] else n_states - 2
    if not np.isfinite(k[-1, s]):
        raise AlignmentError("no valid alignment path (all paths have zero probability)")
    states = [s]
    for t in range(n_frames - 1, 0, -1):
        options = [(k[t - 1, s], s)]
        if s >= 1:
            options.append((k[t - 1, s - 1], s - 1))
        if s >= 2 and skip[s]:
            options.append((k[t - 1, s - 2], s - 2))
        best = max(v for v, _ in options)
        s = next(st for v, st in options if v == best)
        states.append(s)
    states.reverse()
    if states[0] > 1:  # pragma: no cover - impossible for a finite trellis
        raise AlignmentError("backtracking did not reach the first label")
    return [
        PathPoint((st - 1) // 2, t, float(math.exp(emission[t, labels[st]])))
        for t, st in enumerate(states)
        if st >= 1
    ]


def merge_repeats(path: Sequence[PathPoint], transcript: Sequence[str]) -> list[Segment]:
    """One segment per transcript label: consecutive path points of the same label, with mean probability."""
    segments: list[Segment] = []
    i = 0
    while i < len(path):
        j = i
        while j < len(path) and path[j].token_index == path[i].token_index:
            j += 1
        score = float(np.mean([p.prob for p in path[i:j]]))
        segments.append(Segment(transcript[path[i].token_index], path[i].frame, path[j - 1].frame + 1, score))
        i = j
    return segments


def merge_words(segments: Sequence[Segment], separator: str = "|") -> list[Segment]:
    """Group character segments into words at the separator; score is the frame-weighted mean probability."""
    words: list[Segment] = []
    current: list[Segment] = []

    def flush() -> None:
        if current:
            frames = sum(s.length for s in current)
            score = sum(s.score * s.length for s in current) / frames
            words.append(Segment("".join(s.label for s in current), current[0].start, current[-1].end, score))
            current.clear()

    for seg in segments:
        if seg.label == separator:
            flush()
        else:
            current.append(seg)
    flush()
    return words


def frames_to_seconds(frame: float, ratio: float, sr: int) -> float:
    """Paper eq. (1): s = floor(ratio * f) / sr, with ratio = M / T samples per emission frame."""
    return math.floor(ratio * frame + 1e-9) / sr


def align(
    emission: np.ndarray, transcript: str, vocab: dict[str, int], blank: int, separator: str = "|"
) -> tuple[list[Segment], list[Segment], list[PathPoint], np.ndarray]:
    """Force-align ``transcript`` to ``emission``: (word segments, character segments, path, trellis)."""
    tokens = tokens_for(transcript, vocab)
    k = trellis(emission, tokens, blank)
    path = backtrack(k, emission, tokens, blank)
    chars = merge_repeats(path, list(transcript))
    return merge_words(chars, separator), chars, path, k
