"""The TTS parameters of each backend, from the config's ``speech.tts`` section: :func:`tts_options`.

eSpeak and MeloTTS take different parameters with different units: eSpeak's ``rate`` is words per minute
(80-450), MeloTTS's ``speed`` a factor (1.0 = normal). Each backend has its own validated sub-section
(``speech.tts.espeak: {voice, rate, pitch}``, ``speech.tts.melotts: {speaker, speed, device, language,
cache_dir}``; the schema holds the defaults). The old flat keys (``speech.tts.voice/rate/pitch/speaker/
device``) still work with a deprecation warning (:func:`migrate_flat_keys`, applied to the config as written,
before the schema fills its defaults); a flat ``rate`` is never passed to MeloTTS as its speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: deprecated flat key -> (backend, key in that backend's section)
FLAT_KEYS = {"voice": ("espeak", "voice"), "rate": ("espeak", "rate"), "pitch": ("espeak", "pitch"),
             "speaker": ("melotts", "speaker"), "device": ("melotts", "device")}


class TTSConfigError(ValueError):
    """A TTS parameter is out of range; the message names the config key."""


@dataclass
class TTSOptions:
    backend: str
    options: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def migrate_flat_keys(tts: dict[str, Any]) -> list[str]:
    """Move the deprecated flat keys of ``speech.tts`` (as the user wrote it) into their backend's section, in
    place, unless that section sets the key already; returns the warnings (the caller shows them)."""
    warnings = []
    for flat, (owner, key) in FLAT_KEYS.items():
        if flat not in tts:
            continue
        section = tts.setdefault(owner, {})
        if key in section:
            warnings.append(f"`speech.tts.{flat}` is deprecated and ignored: `speech.tts.{owner}.{key}` is set")
        else:
            warnings.append(f"`speech.tts.{flat}` is deprecated: use `speech.tts.{owner}.{key}`")
            section[key] = tts[flat]
    return warnings


def tts_options(tts: dict[str, Any], backend: str | None = None) -> TTSOptions:
    """The options of ``backend`` (default: ``speech.tts.backend``) from ``speech.tts`` as the schema filled it,
    checked: out-of-range values raise naming the config key."""
    backend = backend or tts["backend"]
    if backend not in ("espeak", "melotts"):
        raise TTSConfigError(f"`speech.tts.backend`: unknown TTS backend {backend!r}; choose espeak or melotts")
    opts = dict(tts[backend])
    if backend == "espeak":
        if not 80 <= int(opts["rate"]) <= 450:
            raise TTSConfigError(f"`speech.tts.espeak.rate` = {opts['rate']}: eSpeak's words per minute, 80-450")
        if not 0 <= int(opts["pitch"]) <= 100:
            raise TTSConfigError(f"`speech.tts.espeak.pitch` = {opts['pitch']}: 0-100")
    else:
        from factrace.speech.tts.melotts_worker import SPEED_RANGE

        lo, hi = SPEED_RANGE
        if not lo <= float(opts["speed"]) <= hi:
            raise TTSConfigError(
                f"`speech.tts.melotts.speed` = {opts['speed']}: MeloTTS's speed factor (1.0 = normal), {lo}-{hi}; "
                "words per minute is eSpeak's `speech.tts.espeak.rate`"
            )
    return TTSOptions(backend, opts)
