"""MeloTTS synthesis of one prompts shard, run in MeloTTS's own environment (rule ``tts_melotts``).

MeloTTS pins ``transformers==4.27.4`` (and, in older releases, ``torch<2``), which cannot share an environment
with the tracing stack (``transformers>=4.45``). So it runs in its own environment (``envs/melotts.yaml``, or
``/opt/melotts`` in the Apptainer image) through this module, which imports only the standard library, numpy,
soundfile, pyarrow (to read the shard) and ``melo``: nothing else of factrace. It must stay importable on the
MeloTTS environment's Python (3.10).

    python -m factrace.speech.tts.melotts_worker --prompts P.parquet --out-dir D --speaker EN-US --speed 1.0 \
        --device cuda --cache-dir checkpoints/melotts

writes ``D/<known_id>_<field>.wav`` at MeloTTS's native rate and ``D/synth.json`` (per file: ok, sample rate,
error; and the parameters used). The ``tts`` rule then resamples to 16 kHz and writes the ``audio`` manifest
(:func:`factrace.speech.tts.synthesis.synthesize` with ``backend="melotts"``). ``speed`` is MeloTTS's speed factor
(1.0 = normal; ``length_scale = 1 / speed``), never eSpeak's words per minute.

Offline: MeloTTS fetches its model, the BERT tokenizers of every language module it imports, and NLTK's
tagger and CMUdict at first use. ``factrace fetch-checkpoints`` puts them in ``--cache-dir`` (``hf/``, a hub
cache, and ``nltk_data/``) on the login node; this module points the libraries there and sets them offline.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("factrace.melotts")

FIELDS = ("prompt", "subject", "attribute")
SPEED_RANGE = (0.5, 2.0)  # MeloTTS's speed factor; outside it speech is garbled or a crawl


def offline_environment(cache_dir: str | None) -> dict[str, str]:
    """Environment variables that point MeloTTS's libraries at ``cache_dir`` and forbid downloads."""
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if cache_dir:
        root = Path(cache_dir).resolve()
        hub = str(root / "hf")  # one hub cache, under each name that huggingface_hub / transformers versions read
        env.update(HF_HUB_CACHE=hub, HUGGINGFACE_HUB_CACHE=hub, TRANSFORMERS_CACHE=hub,
                   HF_HOME=str(root / "hf-home"), NLTK_DATA=str(root / "nltk_data"))
    return env


def check_speed(speed: float) -> float:
    lo, hi = SPEED_RANGE
    if not lo <= float(speed) <= hi:
        raise ValueError(
            f"MeloTTS speed {speed} is outside [{lo}, {hi}]: it is a factor (1.0 = normal), not words per minute "
            "(that is eSpeak's `speech.tts.espeak.rate`). Set `speech.tts.melotts.speed`."
        )
    return float(speed)


def read_texts(prompts_parquet: str, fields: tuple[str, ...] = FIELDS) -> list[tuple[str, str]]:
    """(file stem ``<known_id>_<field>``, text) for every fact and field of the shard, in known_id order."""
    import pyarrow.parquet as pq

    rows = sorted(pq.read_table(prompts_parquet).to_pylist(), key=lambda r: int(r["known_id"]))
    return [(f"{int(r['known_id'])}_{f}", str(r.get(f) or "").strip()) for r in rows for f in fields]


def synthesize_all(
    items: list[tuple[str, str]], out_dir: str, speaker: str, speed: float, device: str, language: str,
    seed: int = 0,
) -> dict:
    """Synthesise every (stem, text) into ``out_dir/<stem>.wav``; returns (and writes) ``synth.json``."""
    import soundfile as sf
    import torch
    from melo.api import TTS

    speed = check_speed(speed)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log.info("loading MeloTTS language=%s device=%s", language, device)
    model = TTS(language=language, device=device)
    spk2id = model.hps.data.spk2id
    if speaker not in spk2id:
        raise SystemExit(f"MeloTTS {language} has no speaker {speaker!r}; choose one of {sorted(spk2id)} "
                         "(`speech.tts.melotts.speaker`)")
    files: dict[str, dict] = {}
    for n, (stem, text) in enumerate(items, 1):
        if not text:
            files[stem] = {"ok": False, "error": "nothing to synthesise (empty text)"}
            continue
        torch.manual_seed(int(seed))  # MeloTTS samples noise (noise_scale) during inference
        path = out / f"{stem}.wav"
        tmp = path.with_suffix(".tmp.wav")
        try:
            model.tts_to_file(text, spk2id[speaker], str(tmp), speed=speed, quiet=True)
            info = sf.info(str(tmp))
            os.replace(tmp, path)
            files[stem] = {"ok": True, "sample_rate": int(info.samplerate), "text": text}
        except Exception as err:  # noqa: BLE001 - one bad utterance is a row with a reason, not a failed shard
            log.warning("%s: MeloTTS failed: %s", stem, err)
            files[stem] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        log.info("melotts %d/%d: %s", n, len(items), stem)
    result = {"engine": "melotts", "language": language, "speaker": speaker, "speed": speed, "device": device,
              "seed": int(seed), "files": files}
    tmp_json = out / "synth.json.tmp"
    tmp_json.write_text(json.dumps(result, indent=1, sort_keys=True))
    os.replace(tmp_json, out / "synth.json")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m factrace.speech.tts.melotts_worker", description=__doc__.split("\n")[0])
    p.add_argument("--prompts", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--speaker", default="EN-US")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--language", default="EN")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=None, help="speech.tts.melotts.cache_dir (from fetch-checkpoints)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    os.environ.update(offline_environment(a.cache_dir))  # before melo imports transformers / nltk
    synthesize_all(read_texts(a.prompts), a.out_dir, a.speaker, a.speed, a.device, a.language, a.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
