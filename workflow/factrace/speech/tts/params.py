"""The TTS parameters of each backend, from the config's ``speech.tts`` section: :func:`tts_options`.

eSpeak and MeloTTS take different parameters with different units: eSpeak's ``rate`` is words per minute
(80-450), MeloTTS's ``speed`` a factor (1.0 = normal). Each backend has its own validated sub-section
(``speech.tts.espeak: {voice, rate, pitch}``, ``speech.tts.melotts: {speaker, speed, device, language,
cache_dir}``; the schema holds the defaults). The old flat keys (``speech.tts.voice/rate/pitch/speaker/
device``) still work with a deprecation warning (:func:`factrace.core.config.migrate_flat_keys`, applied to the config as written,
before the schema fills its defaults); a flat ``rate`` is never passed to MeloTTS as its speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class TTSConfigError(ValueError):
    """A TTS parameter is out of range; the message names the config key."""


@dataclass
class TTSOptions:
    backend: str
    options: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


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
