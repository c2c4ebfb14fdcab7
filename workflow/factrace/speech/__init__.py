"""Speech front half and back half: audio, TTS, ASR check, alignment, speech tokens."""
