"""The ASR check of the synthesised speech: faster-whisper transcription and WER (:mod:`.whisper`), the ``asr``
stage (:mod:`.stage`, command ``asr`` in :mod:`.commands`) and the WER summary for the report (:mod:`.quality`)."""
