# Speech data pipeline (filled in by the speech stage): tts -> asr -> align -> speech tokens -> token map.


def speech_targets():
    return []
