# Shared settings and helpers: config validation, the shard plan, model specs, targets.
import hashlib
import json
import math
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import min_version, validate

min_version("8.0")

validate(config, "../schemas/config.schema.yaml")

from factrace.facts.known import FactsError, load_facts, shard_name, shards as facts_shards  # noqa: E402

R = config.get("results", "results")
SEED = config.get("seed", 1)
FACTS_PATH = config["facts"]["path"]
SHARD_SIZE = config["facts"].get("shard_size", 8)
LIMIT = config["facts"].get("limit")
DOWNLOADED_FACTS = bool(config["facts"].get("url")) and not Path(FACTS_PATH).exists()
TRACING = config["tracing"]
KINDS = TRACING.get("kinds", ["hidden", "mlp", "attn"])
SPEECH = config.get("speech", {})
SPEECH_ENABLED = SPEECH.get("enabled", False)
SPEECHLM = SPEECH.get("speechlm", {})


def _plan_shards():
    """Shard name -> digest of its facts. Membership depends on known_id only (shard = known_id // size)."""
    if DOWNLOADED_FACTS:
        lo, hi = config["facts"].get("expected_ids", [0, 0])
        if hi <= lo:
            raise WorkflowError(
                f"facts file {FACTS_PATH} does not exist yet and will be downloaded from `facts.url`; set "
                "`facts.expected_ids: [first, last)` so the shards can be planned before the download"
            )
        ids = list(range(lo, hi))[:LIMIT] if LIMIT else list(range(lo, hi))
        return {shard_name(i // SHARD_SIZE): "downloaded" for i in ids}
    try:
        groups = facts_shards(load_facts(FACTS_PATH), SHARD_SIZE, LIMIT)
    except FactsError as err:
        raise WorkflowError(str(err)) from None
    return {
        name: hashlib.sha256(json.dumps([f.__dict__ for f in fs], sort_keys=True).encode()).hexdigest()[:16]
        for name, fs in groups.items()
    }


SHARDS = _plan_shards()


def subjects_digest():
    """Digest of the (known_id, subject) pairs: the noise scale depends on the subjects only."""
    if DOWNLOADED_FACTS:
        return "downloaded"
    facts = [f for fs in facts_shards(load_facts(FACTS_PATH), SHARD_SIZE, LIMIT).values() for f in fs]
    pairs = sorted((f.known_id, f.subject) for f in facts)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]


SUBJECTS_DIGEST = subjects_digest()


def _remove_unreadable_tables():
    """A truncated or corrupted stage table is removed before planning, so that its job runs again.

    Reading a Parquet footer costs a millisecond; a half-written file never has a valid one. Jobs write under a
    temporary name and rename, so this only finds files damaged after the fact (disk faults, manual copies).
    """
    import pyarrow.parquet as pq

    root = Path(R)
    if not root.is_dir():
        return
    for path in root.rglob("*.parquet"):
        if ".parts" in path.parent.name:
            continue  # a trace job's finished facts; the job itself checks them
        try:
            pq.read_metadata(path)
        except Exception as err:
            logger.warning(f"{path}: unreadable Parquet ({err}); removed so that the job that makes it reruns")
            path.unlink()


_remove_unreadable_tables()


wildcard_constraints:
    shard=r"\d{4}",
    model=r"[A-Za-z0-9_\-]+",
    modality=r"t2t|s2t",
    kind=r"hidden|mlp|attn",
    lo=r"\d+",
    hi=r"\d+",


def model_cfg(name):
    return config["models"][name]


def _check_model_paths():
    """A missing checkpoint is an error that names the config key, before any job runs."""
    for name, m in config["models"].items():
        if m.get("convert"):
            continue  # built by a rule of this workflow
        p = Path(m["path"])
        if not p.exists():
            raise WorkflowError(
                f"model {name!r}: checkpoint {p} not found. Set `models.{name}.path` in the config to a local "
                "checkpoint directory (the workflow never downloads weights)."
            )


_check_model_paths()


def model_spec_json(name):
    """The model's config entry as JSON for the CLI (a params value: editing it reruns that model's jobs)."""
    keep = {k: v for k, v in model_cfg(name).items() if k not in ("label", "modalities")}
    return json.dumps(keep, sort_keys=True)


def model_input(name):
    """The checkpoint directory as an input when a rule of this workflow builds it; nothing otherwise."""
    m = model_cfg(name)
    return [m["path"]] if m.get("convert") else []


def model_modalities():
    return [(name, mod) for name, m in config["models"].items() for mod in m.get("modalities", ["t2t"])]


def layer_windows(name):
    """[lo, hi) centre-layer windows of the split trace jobs of one model."""
    n = model_cfg(name)["n_layers"]
    w = TRACING.get("layer_window", 0) or n
    return [(lo, min(n, lo + w)) for lo in range(0, n, w)]


def shard_paths(pattern, **kw):
    return expand(pattern, shard=sorted(SHARDS), allow_missing=True, **kw)


def all_targets():
    out = []
    for name, mod in model_modalities():
        out.append(f"{R}/aie/{name}/{mod}.parquet")
        out.append(f"{R}/figures/aie_{name}_{mod}.png")
        out.append(f"{R}/figures/prompts/{name}_{mod}.done")
    out.append(f"{R}/qc/qc.tsv")
    out.append(f"{R}/figures/figure2.png")
    if SPEECH_ENABLED:
        out.extend(speech_targets())
    for m in speech_models():
        out.append(f"{R}/figures/modality_gap_{m}.png")
    return out


# ---- speech (speech.smk): backends from config `speech:`
TTS = SPEECH.get("tts", {})
ASR = SPEECH.get("asr", {})
ALIGN = SPEECH.get("alignment", {})
UNITS = SPEECH.get("units", {})
UNITS_BACKEND = UNITS.get("backend", "mfcc-kmeans")
ALIGN_METHOD = ALIGN.get("method", "espeak-onsets")


def speech_models():
    """Models that read speech: a token map is built with each one's text tokenizer."""
    return sorted({name for name, mod in model_modalities() if mod == "s2t"})


def speech_targets():
    out = [
        f"{R}/speech/wer.json",
        f"{R}/figures/speech/wer_histogram.png",
        f"{R}/figures/speech/alignment.done",
    ]
    out += shard_paths(f"{R}/speech/tokens/shard-{{shard}}.parquet")
    for m in speech_models():
        out += shard_paths(f"{R}/speech/token_map/{m}/shard-{{shard}}.parquet")
    if ALIGN.get("compare"):
        out.append(f"{R}/speech/alignment_disagreement.tsv")
    return out


def align_inputs(wc):
    return {
        "audio": f"{R}/speech/audio/shard-{wc.shard}.parquet",
        "onsets": f"{R}/speech/audio/shard-{wc.shard}.onsets.parquet",
        "prompts": f"{R}/prompts/shard-{wc.shard}.parquet",
    }


def align_args(method):
    if method == "hubert-ctc":
        return f"--model-dir {ALIGN['ctc_model']}" if ALIGN.get("ctc_model") else ""
    return ""


# ---- filter and trace (filter.smk, trace.smk)
def speech_shard_inputs(wc):
    """The shard's speech tokens and token map, for S->T jobs."""
    if wc.modality != "s2t":
        return {}
    return {
        "speech_tokens": f"{R}/speech/tokens/shard-{wc.shard}.parquet",
        "token_map": f"{R}/speech/token_map/{wc.model}/shard-{wc.shard}.parquet",
    }


def asr_shard_input(wc):
    """The shard's ASR check, for the S->T filter (facts it dropped are not kept)."""
    return [f"{R}/speech/asr/shard-{wc.shard}.parquet"] if wc.modality == "s2t" else []


def noise_speech_inputs(wc):
    if wc.modality != "s2t":
        return {}
    return {
        "speech_tokens": [ancient(p) for p in shard_paths(f"{R}/speech/tokens/shard-{{shard}}.parquet")],
        "token_map": [ancient(p) for p in shard_paths(f"{R}/speech/token_map/{wc.model}/shard-{{shard}}.parquet")],
    }


def trace_runtime(wc, attempt):
    """Minutes for one trace job, from the cost model when the config gives a device throughput."""
    from factrace.tracing.estimate import job_minutes

    est = job_minutes(config, wc.model, wc.modality, wc.kind, int(wc.lo), int(wc.hi), shard_size=SHARD_SIZE)
    return max(5, math.ceil(est)) * attempt


# ---- compare (compare.smk)
MOD_LABEL = {"t2t": "T->T", "s2t": "S->T"}


ROLE_ORDER = {"backbone": 0, "speechlm": 1, "reference": 2}


def figure2_rows():
    """The paper's rows: backbones T->T, then each speech LM in T->T and S->T; reference LMs last."""
    order = sorted(
        model_modalities(),
        key=lambda mm: (ROLE_ORDER[model_cfg(mm[0]).get("role", "backbone")], mm[0], mm[1] != "t2t"),
    )
    return [[m, mod, f"{model_cfg(m).get('label', m)} {MOD_LABEL[mod]}"] for m, mod in order]


def converted_models(kind):
    """Wildcard constraint: the names of the models that a rule builds with `convert: kind`."""
    return "|".join(n for n, m in config["models"].items() if m.get("convert") == kind) or "^$"


def speechlm_backbone_input(wc):
    """The stage-1 checkpoint the speech LM is adapted from (`speech.speechlm.backbone`, a model name)."""
    name = SPEECHLM.get("backbone", "speechlm_backbone")
    if model_cfg(name).get("convert") != "speechlm-backbone":
        raise WorkflowError(f"speech.speechlm.backbone: model {name!r} is not built by build_speechlm_backbone")
    return model_input(name)


def both_modality_traces():
    models = [m for m in config["models"] if {"t2t", "s2t"} <= set(model_cfg(m).get("modalities", []))]
    return [
        f"{R}/trace/{m}/{mod}/{k}/shard-{s}.parquet"
        for m in models
        for mod in ("t2t", "s2t")
        for k in KINDS
        for s in sorted(SHARDS)
    ]
