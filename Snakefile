# factrace: where do speech-text language models store and recall facts, in text and in speech?
# Causal tracing (activation patching, Meng et al. 2022) as a Snakemake workflow.
#
#   snakemake --profile profiles/local                                # offline default (config/config.yaml)
#   snakemake --profile profiles/slurm --configfile config/paper.yaml # SpiritLM + Llama-2-7B on Slurm
#
# Stages, one rule file each under workflow/rules/:
#   facts -> models -> speech (tts, asr, align, units, token map) -> filter -> noise -> trace -> aggregate -> figures

# The offline default, unless config files are given on the command line: a cluster config (config/paper.yaml)
# then replaces it instead of being merged into it (merging would add the offline model to a cluster run).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


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
