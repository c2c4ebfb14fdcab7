"""Speech front half and back half: audio, TTS, ASR check, alignment, speech tokens.

One sub-package per stage, each with its stage function(s) (``stage.py``/``stages.py``, one shard per call) and
its CLI subcommands (``commands.py``, ``register(subparsers)``):

* :mod:`.tts`: text to speech (eSpeak NG offline, MeloTTS on clusters) and the ``tts`` stage.
* :mod:`.asr`: the Whisper ASR check and its WER (``asr``; the ``wer-summary`` numbers).
* :mod:`.align`: word alignment (eSpeak onsets, pocketsphinx, Whisper, HuBERT CTC) and ``align``/``align-compare``.
* :mod:`.units`: speech tokens (mfcc-kmeans, SpiritLM HuBERT units) and ``fit-units``/``speech-tokens``/``token-map``.

Shared by them: :mod:`.audio` (loading, checks, WAV writing), :mod:`.tables` (a shard's audio manifest rows,
onset sidecar, usable alignment rows) and :mod:`.token_map` (text tokens to speech-token ranges). The speech
figures are drawn by the analysis layer (:mod:`factrace.analysis.figures.speech`); nothing here imports it.
"""
