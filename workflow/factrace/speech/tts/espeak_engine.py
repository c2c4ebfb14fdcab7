"""The eSpeak NG library through ctypes, and the forked runs that make its synthesis deterministic.

:class:`EspeakNG` loads the shared library and data shipped in the PyPI package ``espeakng-loader`` in
``AUDIO_OUTPUT_SYNCHRONOUS`` mode: int16 samples at eSpeak's own rate (22050 Hz) plus its WORD events (each
word's sample offset), and its IPA pronunciation of a text. eSpeak NG keeps synthesis state in C statics that
no API resets, so callers run every synthesis with :func:`run_forked`, in a fork of a freshly initialised
engine. The backend on top of it is :mod:`factrace.speech.tts.espeak`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from factrace.speech.tts.base import TTSError

log = logging.getLogger(__name__)

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


class EspeakNG:
    """The process-wide eSpeak NG instance (the library keeps global state: one synthesis at a time)."""

    _instance: EspeakNG | None = None
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
    def get(cls) -> EspeakNG:
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

    def phonemes_ipa(self, text: str, voice: str) -> list[list[str]]:
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


def run_forked(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` in a forked child and return its (pickled) result.

    eSpeak NG keeps synthesis state in C statics that no API call resets (e.g. the pitch-flutter index in
    wavegen.c's ``AdvanceParameters``), so the same text synthesised twice in one process gives slightly
    different audio. The parent initialises eSpeak but never synthesises; every synthesis runs in a fresh
    fork of that pristine state, which makes the output a function of (text, voice, rate, pitch) only.
    """
    import pickle

    EspeakNG.get()  # initialise (load voice data) once in the parent
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
