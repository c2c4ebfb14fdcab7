# Shared settings and helpers: config validation, the shard plan, model specs, targets.
import hashlib
import json
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import min_version

min_version("8.0")

# The schema is the one source of defaults: fill_and_check (below) fills every key it does not find, so below the
# config is indexed, never read with a default of its own (tests/test_defaults.py checks it).
from factrace.core.config_errors import has_key  # noqa: E402
from factrace.speech.tts.params import TTSConfigError, tts_options  # noqa: E402


def _last_layer(path):
    return max((i for i, (_, layer) in enumerate(CONFIG_LAYERS) if has_key(layer, path)), default=-1)


# the deprecated speech.speechlm.subject_margin counts unless the same or a later file sets tracing.subject_margin_s2t
_MARGIN_GIVEN = _last_layer(["tracing", "subject_margin_s2t"]) >= _last_layer(["speech", "speechlm", "subject_margin"])
# deprecated flat `speech.tts` keys moved into their backend's section, file by file, before the merge (Snakefile)
_TTS_WARNINGS = CONFIG_WARNINGS
# the schema's defaults filled in, then the combinations that could only fail in a job: a bad config is a few lines
# naming the file that gave the key (CONFIG_LAYERS, Snakefile), the key and what is allowed
from factrace.core.config import fill_and_check  # noqa: E402
from factrace.core.config_errors import ConfigError  # noqa: E402

try:
    fill_and_check(config, CONFIG_LAYERS)
except ConfigError as _err:
    raise WorkflowError(str(_err)) from None

from factrace.facts.known import FactsError, load_facts, load_facts_checked, shard_name, shards as facts_shards  # noqa: E402

R = config["results"]
SEED = config["seed"]
FACTS_PATH = config["facts"]["path"]
SHARD_SIZE = config["facts"]["shard_size"]
LIMIT = config["facts"]["limit"]
FACTS_URL = config["facts"]["url"]
TRACING = config["tracing"]
KINDS = TRACING["kinds"]
SPEECH = config["speech"]
from factrace.core.config import ignored_key_warnings  # noqa: E402

for _w in ignored_key_warnings(config):  # tracing.layer_window, tracing.noise_multiplier_s2t, ...
    logger.warning(_w)
SPEECH_ENABLED = SPEECH["enabled"]
SPEECHLM = SPEECH["speechlm"]


from factrace.models.offline_speechlm.sweep import variant_cells, variant_names  # noqa: E402

SWEEP_VARIANTS = variant_names(SPEECHLM["sweep"])  # one sweep job per variant; a missing table gives none


def sweep_base():
    """The config's values of a sweep variant's empty cells (factrace.models.offline_speechlm.sweep.BASE); a config
    without the offline backbone (the paper's) cannot run the sweep, and says so when asked to."""
    if SPEECHLM["backbone"] not in config["models"]:
        raise WorkflowError(f"the sweep builds the offline speech LM: models.{SPEECHLM['backbone']} "
                            "(speech.speechlm.backbone) is not in this config")
    bb = config["models"][SPEECHLM["backbone"]]
    return json.dumps({"layers": bb["n_layers"], "hidden": bb["hidden"], "intermediate": bb["intermediate"],
                       "backbone_steps": SPEECHLM["backbone_steps"], "steps": SPEECHLM["steps"],
                       "text_only_fraction": SPEECHLM["text_only_fraction"],
                       "trainable_layers": SPEECHLM["trainable_layers"], "seed": SEED})
if "subject_margin" in SPEECHLM:  # renamed: one margin for the traces and the speech LM's evaluation
    logger.warning("`speech.speechlm.subject_margin` is deprecated: use `tracing.subject_margin_s2t` (it sets the "
                   "margin of the S->T noise scale and traces too)")
    if not _MARGIN_GIVEN:
        TRACING["subject_margin_s2t"] = SPEECHLM["subject_margin"]


def _factrace_shell_prefix():
    """Shell lines call `factrace ...`: a shell function that runs the package with the interpreter running this
    Snakemake (and the package it imported), so that `.venv/bin/snakemake` works without an activated venv. Under
    `--sdm conda` / `apptainer` the job's own environment's `python` runs it instead."""
    import shlex
    import sys

    import factrace
    from snakemake_interface_executor_plugins.settings import DeploymentMethod

    methods = getattr(workflow.deployment_settings, "deployment_method", None) or set()
    if {DeploymentMethod.CONDA, DeploymentMethod.APPTAINER} & set(methods):
        body = 'python -m factrace "$@"'
    else:
        pkg_root = shlex.quote(str(Path(factrace.__file__).resolve().parents[1]))
        body = f'PYTHONPATH={pkg_root}${{PYTHONPATH:+:$PYTHONPATH}} {shlex.quote(sys.executable)} -m factrace "$@"'
    strict = "set -euo pipefail; " if Path(shell.get_executable() or "sh").name == "bash" else "set -eu; "
    return f"{strict}factrace() {{ {body}; }}; "


# shell.prefix formats its argument like a shell line: braces are doubled
shell.prefix(_factrace_shell_prefix().replace("{", "{{").replace("}", "}}"))


def _digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _downloaded_ids():
    """The known_ids of a downloaded facts file, from `facts.expected_ids`, before and after the download.

    A downloaded file is identified by its URL, sha256 and ids, not by its content: the shard digests are then
    the same before and after the download, so the download reruns nothing. A file whose ids differ from the
    expected ones is an error (the plan made before the download would be wrong)."""
    lo, hi = config["facts"].get("expected_ids") or [0, 0]  # optional: no default
    if hi <= lo:
        raise WorkflowError(
            f"`facts.url` is set: set `facts.expected_ids: [first, last)` so that the shards of {FACTS_PATH} are "
            "planned the same way before and after its download"
        )
    ids = list(range(lo, hi))
    if Path(FACTS_PATH).exists():
        try:
            got = sorted(f.known_id for f in load_facts(FACTS_PATH))
        except FactsError as err:
            raise WorkflowError(str(err)) from None
        if got != ids:
            raise WorkflowError(
                f"{FACTS_PATH}: its known_ids ({len(got)} ids) differ from `facts.expected_ids: [{lo}, {hi})`; "
                "fix `facts.expected_ids` (the shards were planned from it)"
            )
    return ids[:LIMIT] if LIMIT else ids


def _plan_shards():
    """Shard name -> (digest of its facts, number of facts). Membership depends on known_id only
    (shard = known_id // size); a downloaded file's shards are digested from its URL, sha256 and ids."""
    if FACTS_URL:
        groups = {}
        for i in _downloaded_ids():
            groups.setdefault(shard_name(i // SHARD_SIZE), []).append(i)
        src = [FACTS_URL, config["facts"]["sha256"]]
        return {name: (_digest([*src, ids]), len(ids)) for name, ids in groups.items()}
    try:
        facts, skipped = load_facts_checked(FACTS_PATH)
    except FactsError as err:
        raise WorkflowError(str(err)) from None
    if skipped:  # said while planning, so that a dry run shows it too (the run writes them to skipped_facts)
        shown = "; ".join(f"row {s.row} (known_id={s.known_id}): {s.reason}" for s in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        logger.warning(f"{len(skipped)} row(s) of {FACTS_PATH} will be skipped ({R}/prompts/skipped_facts.parquet "
                       f"lists each with its reason; fix or remove them): {shown}{more}")
    groups = facts_shards(facts, SHARD_SIZE, LIMIT)
    return {name: (_digest([f.__dict__ for f in fs]), len(fs)) for name, fs in groups.items()}


SHARD_PLAN = _plan_shards()
SHARDS = {name: d for name, (d, _n) in SHARD_PLAN.items()}
SHARD_FACTS = {name: n for name, (_d, n) in SHARD_PLAN.items()}


def subjects_digest():
    """Digest of the (known_id, subject) pairs: the noise scale depends on the subjects only."""
    if FACTS_URL:
        return _digest([FACTS_URL, config["facts"]["sha256"], _downloaded_ids()])
    facts = [f for fs in facts_shards(load_facts(FACTS_PATH), SHARD_SIZE, LIMIT).values() for f in fs]
    return _digest(sorted((f.known_id, f.subject) for f in facts))


SUBJECTS_DIGEST = subjects_digest()


wildcard_constraints:
    shard=r"\d{4}",
    model=r"[A-Za-z0-9_\-]+",
    modality=r"t2t|s2t",
    kind=r"hidden|mlp|attn",
    lo=r"\d+",
    hi=r"\d+",


def model_cfg(name):
    return config["models"][name]


def model_label(name):
    """How figures and the report name a model: `models.<name>.label`, or its name."""
    return model_cfg(name).get("label") or name


def model_path(name):
    """Where a model's checkpoint is: `{results}/models/<converted|backbone|trained>/<name>` when a rule of this workflow
    builds it (`convert:`), the configured `models.<name>.path` otherwise. The one place that derives model paths."""
    m = model_cfg(name)
    if m.get("convert"):
        return f"{R}/models/{BUILT_MODEL_DIRS[m['convert']]}/{name}"
    return m["path"]


def _check_model_paths():
    """A missing checkpoint is an error that names the config key, before any job runs (the list is
    factrace.models.checkpoints.required_checkpoints, which `factrace fetch-checkpoints` fetches)."""
    from factrace.models.checkpoints import checkpoint_problems

    problems = checkpoint_problems(config)
    if problems:
        raise WorkflowError(
            "checkpoints missing (the workflow's jobs never download):\n  " + "\n  ".join(problems)
        )


if not os.environ.get("FACTRACE_PLAN_ONLY"):  # `factrace plan` counts jobs without the weights
    _check_model_paths()


BUILT_MODEL_DIRS = {  # models.smk, speechlm.smk
    "smollm2-gguf": "converted", "speechlm-backbone": "backbone", "speechlm-offline": "trained",
}


def _check_built_model_paths():
    """A model that this workflow builds is found under `results:`, never at a configured path."""
    for name, m in config["models"].items():
        if m.get("convert") not in BUILT_MODEL_DIRS:
            continue
        if "path" in m:
            raise WorkflowError(
                f"model {name!r}: `models.{name}.path` is set, but this model is built by the workflow "
                f"(`convert: {m['convert']}`) under `results:` ({model_path(name)}). Remove `path:` from its "
                "config entry (or remove `convert:` to use an existing checkpoint directory)."
            )


_check_built_model_paths()


# Jobs find this workflow's own package (the envs do not install it) and never reach the hub.
from factrace.models.checkpoints import job_environment  # noqa: E402

os.environ.update(job_environment(workflow.basedir, os.environ))


def model_spec_json(name):
    """The model's config entry as JSON for the CLI (a params value: editing it reruns that model's jobs)."""
    keep = {k: v for k, v in model_cfg(name).items()
            if k not in ("label", "modalities", "max_facts_per_shard", "window")}  # the window: trace's `kinds`
    keep["path"] = model_path(name)
    return json.dumps(keep, sort_keys=True)


def max_facts_per_shard(name):
    """How many kept facts of a shard the model's trace jobs trace (factrace.planning.resources.max_facts_per_shard)."""
    from factrace.planning.resources import max_facts_per_shard as cap

    return cap(config, name)


def max_facts_args(wc):
    n = max_facts_per_shard(wc.model)
    return ["--max-facts", n] if n else []


def max_facts_qc_args():
    """`--max-facts-per-shard MODEL=N ...` of the qc rule: the cap of every model that has one."""
    caps = [f"{m}={max_facts_per_shard(m)}" for m in sorted(config["models"]) if max_facts_per_shard(m)]
    return ["--max-facts-per-shard", *caps] if caps else []


def fact_sets_qc_args():
    """`--fact-sets MODEL=DIR ...` of the qc rule: the checkpoint of every model traced in S->T, whose
    facts.parquet may record which facts it heard in speech (factrace.speechlm.fact_sets)."""
    dirs = [f"{m}={model_path(m)}" for m in sorted(config["models"]) if "s2t" in model_cfg(m)["modalities"]]
    return ["--fact-sets", *dirs] if dirs else []


def model_input(name):
    """The checkpoint directory as an input when a rule of this workflow builds it; nothing otherwise."""
    return [model_path(name)] if model_cfg(name).get("convert") else []


def facts_digest():
    """Digest of every fact in the facts file (limit not applied): what a model trained on the facts (the offline
    speech LM) learnt from. A params value of such a rule, so that other facts rebuild the model."""
    if FACTS_URL:  # the same before and after the download (see _downloaded_ids)
        return _digest([FACTS_URL, config["facts"]["sha256"], _downloaded_ids()])
    return _digest([f.__dict__ for f in sorted(load_facts(FACTS_PATH), key=lambda f: f.known_id)])


FACTS_DIGEST = facts_digest()


def model_modalities():
    return [(name, mod) for name, m in config["models"].items() for mod in m["modalities"]]


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
    out.extend(report_targets())
    if SPEECH_ENABLED:
        out.extend(speech_targets())
    for m in speech_models():
        out.append(f"{R}/figures/modality_gap_{m}.png")
    out.extend(table_targets())
    return out


def table_targets():
    """Every intermediate table (and built model) is a target too: a deleted one is rebuilt by the next run, and
    what depends on it reruns because its input is newer. (Snakemake alone skips a missing intermediate whose
    downstream outputs exist.) A damaged one is found by the jobs that read it, or by `factrace check-tables`."""
    out = shard_paths(f"{R}/prompts/shard-{{shard}}.parquet") + [f"{R}/prompts/skipped_facts.parquet"]
    for name, m in config["models"].items():
        if m.get("convert"):
            out.append(model_path(name))
        if m.get("convert") in ("speechlm-backbone", "speechlm-offline"):
            out.append(speechlm_eval_json(name))
    for name, mod in model_modalities():
        out += shard_paths(f"{R}/filter/{name}/{mod}/shard-{{shard}}.parquet")
        out.append(f"{R}/noise/{name}/{mod}.json")
        out += expand(f"{R}/trace/{name}/{mod}/{{kind}}/shard-{{shard}}.parquet", kind=KINDS, shard=sorted(SHARDS))
    if SPEECH_ENABLED:
        for table in ("speech/audio/shard-{shard}.parquet", "speech/asr/shard-{shard}.parquet",
                      "speech/alignment/shard-{shard}.parquet"):
            out += shard_paths(f"{R}/{table}")
        for method in ALIGN["compare"]:
            out += shard_paths(f"{R}/speech/alignment-{method}/shard-{{shard}}.parquet")
        if UNITS_BACKEND == "mfcc-kmeans":
            out.append(f"{R}/speech/units/mfcc_kmeans.npz")
    for m in speech_models():
        out.append(f"{R}/gap/{m}.parquet")
    return out


# ---- speech (speech.smk): backends from config `speech:`
TTS = SPEECH["tts"]
ASR = SPEECH["asr"]
ALIGN = SPEECH["alignment"]
UNITS = SPEECH["units"]
UNITS_BACKEND = UNITS["backend"]
ALIGN_METHOD = ALIGN["method"]

try:
    TTS_OPTS = tts_options(TTS)  # the configured backend's
    MELOTTS_OPTS = tts_options(TTS, "melotts").options  # rule tts_melotts
    # eSpeak's voice:rate:pitch, the speech LM's main rendering (speechlm.smk)
    ESPEAK_RENDERING = "{voice}:{rate}:{pitch}".format(**tts_options(TTS, "espeak").options)
except TTSConfigError as err:
    raise WorkflowError(str(err)) from None
for _w in _TTS_WARNINGS:
    logger.warning(f"config: {_w}")


def melotts_dir(wc):
    """The MeloTTS worker's output for the shard (rule tts_melotts), for the melotts backend only."""
    return [f"{R}/speech/melotts/shard-{wc.shard}"] if TTS_OPTS.backend == "melotts" else []


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
    if ALIGN["compare"]:
        out.append(f"{R}/speech/alignment_disagreement.tsv")
    return out


def align_inputs(wc):
    return {
        "audio": f"{R}/speech/audio/shard-{wc.shard}.parquet",
        "onsets": f"{R}/speech/audio/shard-{wc.shard}.onsets.parquet",
        "prompts": f"{R}/prompts/shard-{wc.shard}.parquet",
    }


def align_args(method):
    """Extra arguments of `factrace align` for ``method``, as a list (quoted element-wise in the shell line)."""
    if method == "hubert-ctc":
        return ["--model-dir", ALIGN["ctc_model"]] if ALIGN.get("ctc_model") else []
    if method == "whisper":  # the ASR check's faster-whisper model
        return ["--asr-model", ASR["model"]]
    return []


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


def noise_rule_args():
    """The noise rule's settings as arguments (factrace.core.noise_rule): the minimum multiplier, the grid and the
    target ratio. A params value of the rules that apply the rule (noise_scale, the speech LM's builds)."""
    return ["--noise-multiplier", TRACING["noise_multiplier"], "--noise-grid", *TRACING["noise_grid"],
            "--noise-target-ratio", TRACING["noise_target_ratio"]]


def noise_filter_inputs(wc):
    """Every shard's filter table of the (model, modality): the noise rule measures on the facts they keep."""
    return shard_paths(f"{R}/filter/{wc.model}/{wc.modality}/shard-{{shard}}.parquet")


def noise_speech_args(wc, input):
    """The speech inputs of an S->T noise-scale job, as a list of arguments (quoted one by one in the shell)."""
    if wc.modality != "s2t":
        return []
    return ["--speech-tokens", *input.speech_tokens, "--token-map", *input.token_map, *subject_margin_args(wc)]


def trace_speech_args(wc, input):
    """The speech inputs of an S->T trace job, as a list of arguments (quoted one by one in the shell)."""
    if wc.modality != "s2t":
        return []
    return ["--speech-tokens", input.speech_tokens, "--token-map", input.token_map, *subject_margin_args(wc)]


def subject_margin_args(wc):
    """`tracing.subject_margin_s2t` for the S->T jobs that corrupt the subject (noise scale, trace)."""
    return ["--subject-margin", TRACING["subject_margin_s2t"]] if wc.modality == "s2t" else []


def model_window(name):
    """The model's mlp/attn window: `models.<name>.window`, else `tracing.window` capped at
    `tracing.window_max_fraction` of its layers (factrace.tracing.method.resolve_window)."""
    from factrace.tracing.method import model_window as window

    return window(config, name)


def kind_settings(name, kind):
    """The settings that one kind's trace of model ``name`` depends on: the model's window only for mlp and attn."""
    out = {"samples": TRACING["samples"], "seed": SEED}
    if kind != "hidden":
        out["window"] = model_window(name)
    return out


def trace_kind_settings(wc):
    """Per-kind settings of a trace job, in the order of its outputs (a param: a kind's change reruns the job,
    which keeps the tables of the kinds whose settings did not change)."""
    return json.dumps([[k, kind_settings(wc.model, k)] for k in KINDS])


# ---- resources of the rules that load a model (filter, noise_scale, trace, modality_gap): factrace.planning.resources
def model_gpus(wc):
    """One GPU when the model runs on CUDA (models.<name>.device), none otherwise."""
    from factrace.planning.resources import gpus

    return gpus(model_cfg(wc.model))


def model_mem_mb(wc, attempt):
    """Host memory from the model's size and dtype; a retry gets more."""
    from factrace.planning.resources import mem_mb

    return mem_mb(model_cfg(wc.model), attempt)


def _job_facts(rule, wc):
    """Facts one job of ``rule`` works on: its shard's, or all of them for the per-model rules."""
    shard = getattr(wc, "shard", None)
    return SHARD_FACTS[shard] if shard else sum(SHARD_FACTS.values())


def model_runtime(rule):
    """Runtime (minutes) of a job of ``rule`` from the cost model, with `resources.margin`; see factrace.planning.resources."""
    from factrace.planning.resources import estimate, runtime_minutes

    def runtime(wc, attempt):
        est = estimate(config, rule, wc.model, getattr(wc, "modality", None), _job_facts(rule, wc))
        return runtime_minutes(config, est, attempt)

    return runtime


# ---- compare (compare.smk)
MOD_LABEL = {"t2t": "T->T", "s2t": "S->T"}


ROLE_ORDER = {"backbone": 0, "speechlm": 1, "reference": 2}


def figure2_rows():
    """The paper's rows: backbones T->T, then each speech LM in T->T and S->T; reference LMs last. Each is split at
    run time by the tables' `fact_set` (factrace.analysis.rows): a speech LM whose checkpoint records which facts
    it heard in speech gives two S->T rows, facts heard in speech and facts learnt in text only."""
    order = sorted(
        model_modalities(),
        key=lambda mm: (ROLE_ORDER[model_cfg(mm[0])["role"]], mm[0], mm[1] != "t2t"),
    )
    return [[m, mod, f"{model_label(m)} {MOD_LABEL[mod]}"] for m, mod in order]


def speechlm_eval_json(name):
    """The build's evaluation of an offline speech LM stage (speechlm.smk)."""
    stage = "backbone_eval" if model_cfg(name).get("convert") == "speechlm-backbone" else "eval"
    return f"{R}/speechlm/{name}/{stage}.json"


def converted_models(kind):
    """Wildcard constraint: the names of the models built with `convert: kind` (a regex)."""
    return "|".join(n for n, m in config["models"].items() if m.get("convert") == kind) or "^$"


def backbone_architecture_args(name):
    """The size of an offline backbone to build, from its config entry (hidden, intermediate, n_layers)."""
    m = model_cfg(name)
    missing = [k for k in ("hidden", "intermediate") if k not in m]
    if missing:
        raise WorkflowError(f"model {name!r} (convert: speechlm-backbone) needs `models.{name}.{missing[0]}`: the "
                            "size of the backbone to build")
    return ["--hidden", m["hidden"], "--intermediate", m["intermediate"], "--layers", m["n_layers"]]


def speechlm_backbone_input(wc):
    """The stage-1 checkpoint the speech LM is adapted from (`speech.speechlm.backbone`, a model name)."""
    name = SPEECHLM["backbone"]
    if model_cfg(name).get("convert") != "speechlm-backbone":
        raise WorkflowError(f"speech.speechlm.backbone: model {name!r} is not built by build_speechlm_backbone")
    return model_input(name)


def both_modality_traces():
    models = [m for m in config["models"] if {"t2t", "s2t"} <= set(model_cfg(m)["modalities"])]
    return [
        f"{R}/trace/{m}/{mod}/{k}/shard-{s}.parquet"
        for m in models
        for mod in ("t2t", "s2t")
        for k in KINDS
        for s in sorted(SHARDS)
    ]


# ---- report (report.smk): HTML pages of the tables and per-prompt plots
def compare_tables():
    """The compare rule's tables, as the report shows them (peaks, per-category peaks and ratios, the paired tests
    and the tests dropped with their reason)."""
    names = ["peaks", "category_peaks", "category_ratios", "tests", "tests_dropped"]
    return [f"{R}/compare/{n}.csv" for n in names]


def report_targets():
    out = [f"{R}/report/qc.html", f"{R}/report/effects.html", f"{R}/report/summary.html"]
    out += [f"{R}/report/prompts_{m}_{mod}.html" for m, mod in model_modalities()]
    if SPEECH_ENABLED and ALIGN["compare"]:
        out.append(f"{R}/report/alignment.html")
    out += [
        f"{R}/report/speechlm_eval_{m}.html" for m, c in config["models"].items()
        if c.get("convert") in ("speechlm-backbone", "speechlm-offline")
    ]
    return out
