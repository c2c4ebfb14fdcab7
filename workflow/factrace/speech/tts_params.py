"""The TTS parameters of each backend, from the config's ``speech.tts`` section: :func:`tts_options`.

eSpeak and MeloTTS take different parameters with different units: eSpeak's ``rate`` is words per minute
(80-450), MeloTTS's ``speed`` a factor (1.0 = normal). Each backend has its own validated sub-section
(``speech.tts.espeak: {voice, rate, pitch}``, ``speech.tts.melotts: {speaker, speed, device, language,
cache_dir}``; the schema holds the defaults). The old flat keys (``speech.tts.voice/rate/pitch/speaker/
device``) still work with a deprecation warning; a flat ``rate`` is never passed to MeloTTS as its speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ESPEAK_DEFAULTS: dict[str, Any] = {"voice": "en-us", "rate": 160, "pitch": 50}
MELOTTS_DEFAULTS: dict[str, Any] = {"speaker": "EN-US", "speed": 1.0, "device": "auto", "language": "EN",
                                    "cache_dir": "checkpoints/melotts"}
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


def tts_options(tts: dict[str, Any] | None) -> TTSOptions:
    """The backend and its options from ``speech.tts``; ``warnings`` lists deprecated flat keys (the caller
    shows them: Snakemake's logger at parse time)."""
    tts = dict(tts or {})
    backend = tts.get("backend", "espeak")
    sections = {"espeak": {**ESPEAK_DEFAULTS, **(tts.get("espeak") or {})},
                "melotts": {**MELOTTS_DEFAULTS, **(tts.get("melotts") or {})}}
    warnings = []
    for flat, (owner, key) in FLAT_KEYS.items():
        if flat not in tts:
            continue
        if key in (tts.get(owner) or {}):
            warnings.append(f"`speech.tts.{flat}` is deprecated and ignored: `speech.tts.{owner}.{key}` is set")
            continue
        warnings.append(f"`speech.tts.{flat}` is deprecated: use `speech.tts.{owner}.{key}`")
        sections[owner][key] = tts[flat]
    if backend not in sections:
        raise TTSConfigError(f"`speech.tts.backend`: unknown TTS backend {backend!r}; choose espeak or melotts")
    opts = sections[backend]
    if backend == "espeak":
        if not 80 <= int(opts["rate"]) <= 450:
            raise TTSConfigError(f"`speech.tts.espeak.rate` = {opts['rate']}: eSpeak's words per minute, 80-450")
        if not 0 <= int(opts["pitch"]) <= 100:
            raise TTSConfigError(f"`speech.tts.espeak.pitch` = {opts['pitch']}: 0-100")
    else:
        from .melotts_worker import SPEED_RANGE

        lo, hi = SPEED_RANGE
        if not lo <= float(opts["speed"]) <= hi:
            raise TTSConfigError(
                f"`speech.tts.melotts.speed` = {opts['speed']}: MeloTTS's speed factor (1.0 = normal), {lo}-{hi}; "
                "words per minute is eSpeak's `speech.tts.espeak.rate`"
            )
    return TTSOptions(backend, opts, warnings)
