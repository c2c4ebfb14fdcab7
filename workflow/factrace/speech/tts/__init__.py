"""Text to speech behind one interface: :func:`factrace.speech.tts.synthesis.synthesize` renders a text to a 16 kHz
mono PCM16 WAV.

What the backends and their callers share is in :mod:`.base`: the result (:class:`~.base.SynthResult`), the error
(:class:`~.base.TTSError`) and the words of a text (:func:`~.base.text_words`, :func:`~.base.is_spoken`); it
imports no backend. Each backend is its own module:

``espeak`` (offline default): :mod:`factrace.speech.tts.espeak`
    eSpeak NG through ctypes (:mod:`factrace.speech.tts.espeak_engine`), deterministic, with true word
    onsets from its WORD events (:mod:`factrace.speech.tts.onsets`).
``melotts`` (the paper's, for clusters): :mod:`factrace.speech.tts.melotts`
    MeloTTS runs in its own environment (:mod:`factrace.speech.tts.melotts_worker`, rule ``tts_melotts``); its
    WAVs are resampled here. Gives no word onsets.

A backend's parameters come from the config's ``speech.tts`` section
(:func:`factrace.speech.tts.params.tts_options`); a shard's prompts are rendered and its ``audio`` table
written by :func:`factrace.speech.tts.stage.run_tts` (command ``tts``: :mod:`.commands`).

This package's ``__init__`` imports nothing: ``python -m factrace.speech.tts.melotts_worker`` runs in MeloTTS's
own environment.
"""
