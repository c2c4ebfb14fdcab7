# factrace: where do speech-text language models store and recall facts, in text and in speech?
# Causal tracing (activation patching, Meng et al. 2022) as a Snakemake workflow.
#
#   snakemake --profile profiles/local                                # offline default (config/config.yaml)
#   snakemake --profile profiles/slurm --configfile config/paper.yaml # SpiritLM + Llama-2-7B on Slurm
#
# Stages, one rule file each under workflow/rules/:
#   facts -> models -> speech (tts, asr, align, units, token map) -> filter -> noise -> trace -> aggregate -> figures

# The config, the Snakemake way: the offline default (config/config.yaml), each `--configfile` merged over it key by
# key (mappings merged, lists and scalars replaced), then `--config key=value`, which wins over both. One exception,
# in factrace.core.config.merge_configs: a file's `models:` replaces the default's models whole, so that a cluster config
# (config/paper.yaml) runs its own models, not those plus the offline ones; `--replace-workflow-config` leaves the
# default out. The checks (common.smk) name the file that gave a bad key.
configfile: "config/config.yaml"


from factrace.core.config import layered_config  # noqa: E402

_merged, CONFIG_LAYERS, CONFIG_WARNINGS = layered_config(
    workflow.overwrite_configfiles,
    workflow.config_settings.config,
    default=None if workflow.config_settings.replace_workflow_config else "config/config.yaml",
)
config.clear()
config.update(_merged)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/facts.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/speech.smk"
include: "workflow/rules/speechlm.smk"
include: "workflow/rules/filter.smk"
include: "workflow/rules/trace.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True


onsuccess:
    # the end of a run: how many rows of the facts file were left out (read-only; not run by dry runs)
    _skipped = Path(f"{R}/prompts/skipped_facts.parquet")
    if _skipped.is_file():
        import pyarrow.parquet as _pq

        _n = _pq.read_metadata(_skipped).num_rows
        if _n:
            logger.warning(f"{_n} problem(s) in {FACTS_PATH}: those facts were skipped (file, row, known_id, "
                           f"reason in {_skipped})")
