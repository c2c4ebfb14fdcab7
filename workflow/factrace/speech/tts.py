"""Text to speech behind one interface: :func:`synthesize`.

Backends
--------
``espeak`` (offline default)
    eSpeak NG through the shared library and data shipped in the PyPI package ``espeakng-loader``, called with
    ctypes in ``AUDIO_OUTPUT_SYNCHRONOUS`` mode. The ``espeakEVENT_WORD`` events give each word's sample
    offset in the synthesiser's own output, i.e. the true word onset. eSpeak renders 22050 Hz; the audio is
    resampled to 16 kHz mono PCM16. Output is deterministic for the same text, voice, rate and pitch.
``melotts`` (the paper's, for clusters)
    ``melo.api.TTS(language="EN", device=...)``, ``tts_to_file(..., speed=...)`` with speaker (e.g. ``EN-US``)
    and speed factor (1.0 = normal) from ``speech.tts.melotts``. MeloTTS cannot share this environment (it pins
    ``transformers==4.27.4``), so it runs in its own (:mod:`factrace.speech.melotts_worker`, rule
    ``tts_melotts``); here its WAVs are resampled to 16 kHz mono. Gives no word onsets.

Parameters per backend: :func:`tts_options` turns the config's ``speech.tts`` section (``espeak: {voice,
rate, pitch}``, ``melotts: {speaker, speed, device, language, cache_dir}``; the old flat keys with a
deprecation warning) into the options of :func:`synthesize`.

Word onsets/ends are returned per *spoken text word* (``text.split()``; :func:`text_words`, so that every
aligner numbers words the same way; ``word_indices`` gives each entry's index). Pure punctuation (an em dash)
gets no entry. eSpeak joins some unstressed words to the previous one ("in the", "at a") and emits a single
WORD event for both: the joined span is split by phoneme count and the entry is flagged in
``info["interpolated"]``. A word ends at the next word's onset, or where its sound ends when a pause (>= 50 ms)
follows it; the last word ends where the speech ends.

Determinism: eSpeak NG keeps synthesis state in C statics that no API resets, so every eSpeak synthesis runs
in a fork of a freshly initialised engine (:func:`_run_forked`) with a fixed random seed: the same text,
voice, rate and pitch give byte-identical WAVs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio import TARGET_SR, resample, write_wav16

log = logging.getLogger(__name__)

BACKENDS = ("espeak", "melotts")
MELOTTS_ENV_FILE = "envs/melotts.yaml"


class TTSError(RuntimeError):
    """Synthesis failed or its backend is unavailable; the message says what to do."""


@dataclass
class SynthResult:
    path: Path
    sample_rate: int
    duration_s: float
    word_onsets: list[tuple[str, float]] | None
    # (word, end_s) per entry of word_onsets: next word's onset, or for the last word the end of audio less
    # trailing silence
    word_ends: list[tuple[str, float]] | None = None
    # index into text_words(text) of each entry of word_onsets
    word_indices: list[int] | None = None
    backend: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def text_words(text: str) -> list[str]:
    """The word numbering shared by TTS onsets and every aligner: whitespace tokens of the text."""
    return text.split()


def synthesize(text: str, out_wav: str | os.PathLike[str], backend: str = "espeak", **opts: Any) -> SynthResult:
    """Synthesise ``text`` into ``out_wav`` (16 kHz mono PCM16 WAV, written atomically).

    espeak options: ``voice`` (default ``en-us``), ``rate`` (words per minute, 80-450, default 175),
    ``pitch`` (0-100, default 50). melotts options: ``raw_dir``, the MeloTTS worker's output for the shard.
    """
    if not text or not text.strip():
        raise TTSError(f"{out_wav}: nothing to synthesise (empty text). Check the prompts table.")
    if backend == "espeak":
        return _espeak_synthesize(text, out_wav, **opts)
    if backend == "melotts":
        return _melotts_synthesize(text, out_wav, **opts)
    raise TTSError(f"unknown TTS backend {backend!r}; choose one of {', '.join(BACKENDS)}")


# --------------------------------------------------------------------------------------------- eSpeak NG

# speak_lib.h (API revision 12)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PHONEMES_IPA = 0x02


class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position in the text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # sample offset in the output (at the eSpeak rate)
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.POINTER(_EspeakEvent))


class _Espeak:
    """The process-wide eSpeak NG instance (the library keeps global state: one synthesis at a time)."""

    _instance: _Espeak | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as err:  # pragma: no cover - it is a dependency
            raise TTSError(
                "the espeak backend needs the PyPI package 'espeakng-loader' (pip install espeakng-loader)"
            ) from err
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        data_dir = Path(espeakng_loader.get_data_path())
        # 'path' is the directory that contains espeak-ng-data
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_dir.parent).encode(), 0)
        if rate <= 0:
            raise TTSError(f"espeak_Initialize failed (data at {data_dir}); reinstall espeakng-loader")
        self.lib = lib
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int]] = []  # (text_position, length, sample)
        self._callback = _SynthCallback(self._on_synth)  # keep a reference: ctypes must not free it
        lib.espeak_SetSynthCallback(self._callback)
        self.version = "espeak-ng"
        try:
            lib.espeak_Info.restype = ctypes.c_char_p
            lib.espeak_Info.argtypes = [ctypes.c_void_p]
            self.version = "espeak-ng " + lib.espeak_Info(None).decode()
        except (AttributeError, UnicodeDecodeError):  # pragma: no cover
            pass
        log.info("%s initialised at %d Hz (data %s)", self.version, self.sample_rate, data_dir)

    @classmethod
    def get(cls) -> _Espeak:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_synth(self, wav, n, events) -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        if events:
            i = 0
            while events[i].type != _EVENT_LIST_TERMINATED:
                ev = events[i]
                if ev.type == _EVENT_WORD:
                    self._events.append((int(ev.text_position), int(ev.length), int(ev.sample)))
                i += 1
        return 0

    def set_voice(self, voice: str, rate: int, pitch: int) -> None:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise TTSError(f"eSpeak has no voice {voice!r}; use e.g. 'en-us' or 'en' (espeak-ng --voices=en)")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_VOLUME, 100)):
            if self.lib.espeak_SetParameter(param, int(value), 0) != 0:
                raise TTSError(f"eSpeak rejected parameter {param} = {value}")

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """int16 samples at ``self.sample_rate`` and WORD events (text_position, length, sample)."""
        with self._lock:
            self.set_voice(voice, rate, pitch)
            self._chunks, self._events = [], []
            data = text.encode("utf-8")
            uid = ctypes.c_uint(0)
            err = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                        ctypes.byref(uid), None)
            if err != 0:
                raise TTSError(f"espeak_Synth failed with error {err} for text {text!r}")
            wave = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return wave, list(self._events)

    def phonemes_ipa(self, text: str, voice: str = "en-us") -> list[list[str]]:
        """eSpeak's own pronunciation of ``text``: IPA phonemes, one list per spoken word."""
        with self._lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise TTSError(f"eSpeak has no voice {voice!r}")
            buf = ctypes.create_string_buffer(text.encode("utf-8"))
            ptr = ctypes.c_char_p(ctypes.addressof(buf))
            words: list[list[str]] = []
            mode = _PHONEMES_IPA | (ord(" ") << 8)  # IPA, phonemes separated by spaces
            while ptr.value:
                res = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, mode)
                if not res:
                    break
                for w in res.decode("utf-8").split("  "):
                    ph = [p for p in w.split(" ") if p]
                    if ph:
                        words.append(ph)
            return words


def _char_offsets(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets (0-based, end exclusive) of each whitespace token."""
    out, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        j = i
        while j < n and not text[j].isspace():
            j += 1
        out.append((i, j))
        i = j
    return out


def events_to_words(text: str, events: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Map eSpeak WORD events to text words: (word_index, first sample) for every word that has an event.

    eSpeak reports ``text_position`` as a 1-based character position; one text word may give several events
    (e.g. "1889" is spoken as four words) and the earliest one is its onset.
    """
    spans = _char_offsets(text)
    first: dict[int, int] = {}
    for pos, _length, sample in events:
        c = pos - 1
        for k, (a, b) in enumerate(spans):
            if a <= c < b:
                first[k] = min(sample, first.get(k, sample))
                break
    ordered = sorted(first.items())
    # onsets must be non-decreasing in text order (they are for eSpeak; enforce for safety)
    out, last = [], 0
    for k, s in ordered:
        last = max(last, s)
        out.append((k, last))
    return out


def trailing_speech_end(wave: np.ndarray, sr: int, frame_s: float = 0.01, rel_db: float = -40.0) -> float:
    """Time (s) where speech ends: the end of the last 10 ms frame within ``rel_db`` of the loudest frame."""
    hop = max(1, round(frame_s * sr))
    n = len(wave) // hop
    if n == 0:
        return len(wave) / sr
    frames = wave[: n * hop].astype(np.float64).reshape(n, hop)
    rms = np.sqrt(np.mean(frames**2, axis=1)) + 1e-12
    thr = rms.max() * 10 ** (rel_db / 20)
    loud = np.nonzero(rms >= thr)[0]
    return float((loud[-1] + 1) * hop / sr) if len(loud) else len(wave) / sr


def _run_forked(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` in a forked child and return its (pickled) result.

    eSpeak NG keeps synthesis state in C statics that no API call resets (e.g. the pitch-flutter index in
    wavegen.c's ``AdvanceParameters``), so the same text synthesised twice in one process gives slightly
    different audio. The parent initialises eSpeak but never synthesises; every synthesis runs in a fresh
    fork of that pristine state, which makes the output a function of (text, voice, rate, pitch) only.
    """
    import pickle

    _Espeak.get()  # initialise (load voice data) once in the parent
    if not hasattr(os, "fork"):  # pragma: no cover - Windows: in-process, not bit-exact across calls
        return fn(*args)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(rfd)
            try:
                payload = pickle.dumps(("ok", fn(*args)))
            except BaseException as err:  # noqa: BLE001 - reported to the parent
                payload = pickle.dumps(("error", f"{type(err).__name__}: {err}"))
                code = 1
            with os.fdopen(wfd, "wb") as fh:
                fh.write(payload)
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    if not data:
        raise TTSError("the eSpeak synthesis child process died without a result")
    status, value = pickle.loads(data)
    if status != "ok":
        raise TTSError(f"eSpeak synthesis failed: {value}")
    return value


def _spoken(word: str) -> bool:
    return any(ch.isalnum() for ch in word)


def _espeak_child(text: str, voice: str, rate: int, pitch: int, seed: int):
    """In the forked child: synthesise, and phonemise the words eSpeak gave no WORD event."""
    eng = _Espeak.get()
    try:
        eng.lib.espeak_ng_SetRandSeed(ctypes.c_long(int(seed)))
    except AttributeError:  # pragma: no cover - older library
        pass
    pcm, events = eng.synth(text, voice, rate, pitch)
    words = text_words(text)
    got = {k for k, _ in events_to_words(text, events)}
    n_phones = {}
    for k, w in enumerate(words):
        if k not in got and _spoken(w):
            n_phones[k] = sum(len(p) for p in eng.phonemes_ipa(w, voice)) or 1
    # phoneme counts of the evented words that precede a missing one, for the proportional split
    for k in list(n_phones):
        j = k - 1
        while j >= 0 and j not in got:
            j -= 1
        if j >= 0 and j not in n_phones:
            n_phones[j] = sum(len(p) for p in eng.phonemes_ipa(words[j], voice)) or 1
    return pcm, events, n_phones, eng.sample_rate, eng.version


def word_timing(
    text: str, events: list[tuple[int, int, int]], native_sr: int, speech_end_s: float,
    n_phones: dict[int, int] | None = None,
) -> list[tuple[int, str, float, float, bool]]:
    """(word_index, word, start_s, end_s, interpolated) for every spoken text word.

    eSpeak joins some unstressed words to the previous one ("in the", "at a") and emits one WORD event for
    the pair. The joined span (from the event to the next event) is then split between the words in
    proportion to their phoneme counts (``n_phones``) and the later words are flagged ``interpolated``.
    A word's end is the next spoken word's onset; the last word ends at ``speech_end_s``.
    """
    words = text_words(text)
    mapped = dict(events_to_words(text, events))
    n_phones = n_phones or {}
    spoken = [k for k, w in enumerate(words) if _spoken(w) or k in mapped]
    starts: dict[int, tuple[float, bool]] = {k: (s / native_sr, False) for k, s in mapped.items()}
    # group each evented word with the following spoken words that have no event
    groups: list[list[int]] = []
    for k in spoken:
        if k in mapped or not groups:
            groups.append([k])
        else:
            groups[-1].append(k)
    for gi, grp in enumerate(groups):
        if len(grp) == 1 or grp[0] not in mapped:
            continue
        t0 = starts[grp[0]][0]
        nxt = groups[gi + 1][0] if gi + 1 < len(groups) else None
        t1 = starts[nxt][0] if nxt is not None and nxt in starts else max(speech_end_s, t0)
        weights = [float(n_phones.get(k, 1)) for k in grp]
        total = sum(weights)
        acc = t0
        for k, wgt in zip(grp, weights):
            if k != grp[0]:
                starts[k] = (acc, True)
            acc += (t1 - t0) * wgt / total
    order = [k for k in spoken if k in starts]
    out = []
    for i, k in enumerate(order):
        t0, interp = starts[k]
        t1 = starts[order[i + 1]][0] if i + 1 < len(order) else max(speech_end_s, t0)
        out.append((k, words[k], t0, t1, interp))
    return out


def trim_trailing_silence(
    wave: np.ndarray, sr: int, start_s: float, end_s: float, min_gap_s: float = 0.05, rel_db: float = -40.0,
) -> float:
    """Move ``end_s`` back over a pause (>= ``min_gap_s`` of frames ``rel_db`` below the loudest frame).

    Used for word ends: a word's end is the next word's onset unless a pause separates them (a comma, a
    dash), in which case the word ends where its sound ends.
    """
    hop = max(1, round(0.01 * sr))
    a, b = int(start_s * sr) // hop, int(end_s * sr) // hop
    n = len(wave) // hop
    if n == 0 or b <= a:
        return end_s
    rms_all = np.sqrt(np.mean(wave[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1))
    thr = rms_all.max() * 10 ** (rel_db / 20)
    seg = rms_all[a:min(b, n)]
    loud = np.nonzero(seg >= thr)[0]
    if not len(loud):
        return end_s
    last = (a + loud[-1] + 1) * hop / sr
    return last if end_s - last >= min_gap_s else end_s


def _espeak_synthesize(
    text: str, out_wav: str | os.PathLike[str], voice: str = "en-us", rate: int = 175, pitch: int = 50,
    seed: int = 0, **_ignored: Any,
) -> SynthResult:
    pcm, events, n_phones, native_sr, version = _run_forked(
        _espeak_child, text, voice, int(rate), int(pitch), int(seed)
    )
    if pcm.size == 0:
        raise TTSError(f"{out_wav}: eSpeak produced no audio for {text!r}")
    wave = resample(pcm.astype(np.float32) / 32768.0, native_sr, TARGET_SR)
    path = write_wav16(out_wav, wave, TARGET_SR)
    duration = len(wave) / TARGET_SR
    speech_end = min(duration, trailing_speech_end(wave, TARGET_SR))
    timing = word_timing(text, events, native_sr, speech_end, n_phones)
    timing = [(k, w, t0, trim_trailing_silence(wave, TARGET_SR, t0, t1), i) for k, w, t0, t1, i in timing]
    return SynthResult(
        path=path, sample_rate=TARGET_SR, duration_s=duration,
        word_onsets=[(w, t0) for _, w, t0, _, _ in timing],
        word_ends=[(w, t1) for _, w, _, t1, _ in timing],
        word_indices=[k for k, *_ in timing],
        backend="espeak",
        info={"voice": voice, "rate": int(rate), "pitch": int(pitch), "engine": version,
              "native_sample_rate": native_sr, "interpolated": [x[4] for x in timing]},
    )


def espeak_phonemes(text: str, voice: str = "en-us") -> list[list[str]]:
    """eSpeak's IPA pronunciation of ``text`` (one list of phonemes per spoken word)."""
    return _run_forked(_espeak_phonemes_child, text, voice)


def _espeak_phonemes_child(text: str, voice: str) -> list[list[str]]:
    return _Espeak.get().phonemes_ipa(text, voice)


# --------------------------------------------------------------------------------------------- MeloTTS


def _melotts_synthesize(
    text: str, out_wav: str | os.PathLike[str], raw_dir: str | os.PathLike[str] | None = None, **_ignored: Any,
) -> SynthResult:
    """Resample MeloTTS's WAV for ``out_wav`` (made by :mod:`factrace.speech.melotts_worker` in MeloTTS's own
    environment, rule ``tts_melotts``) to 16 kHz mono. The worker's ``synth.json`` gives its parameters."""
    import json

    import soundfile as sf

    from .audio import to_mono

    if raw_dir is None:
        raise TTSError(
            "the melotts backend synthesises in MeloTTS's own environment (rule tts_melotts, "
            f"`python -m factrace.speech.melotts_worker`, env {MELOTTS_ENV_FILE}); pass its output as raw_dir. "
            "Offline, use tts backend 'espeak'."
        )
    raw = Path(raw_dir)
    meta_path = raw / "synth.json"
    if not meta_path.is_file():
        raise TTSError(f"{meta_path} not found: run the MeloTTS worker on the shard first")
    meta = json.loads(meta_path.read_text())
    stem = Path(out_wav).stem
    entry = meta.get("files", {}).get(stem)
    if entry is None:
        raise TTSError(f"{meta_path}: no entry for {stem}")
    if not entry.get("ok"):
        raise TTSError(f"MeloTTS: {entry.get('error', 'synthesis failed')}")
    if entry.get("text") is not None and entry["text"] != text.strip():
        raise TTSError(f"{raw / (stem + '.wav')} was synthesised from {entry['text']!r}, not {text!r}: rerun tts_melotts")
    wave, sr = sf.read(str(raw / f"{stem}.wav"), dtype="float32", always_2d=False)
    wave = resample(to_mono(wave), int(sr), TARGET_SR)
    path = write_wav16(out_wav, wave, TARGET_SR)
    return SynthResult(
        path=path, sample_rate=TARGET_SR, duration_s=len(wave) / TARGET_SR, word_onsets=None, backend="melotts",
        info={"speaker": meta.get("speaker"), "speed": meta.get("speed"), "device": meta.get("device"),
              "language": meta.get("language"), "native_sample_rate": int(sr), "engine": "melotts"},
    )
