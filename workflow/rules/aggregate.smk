# Aggregation and figures: AIE by token category with bootstrap CIs, log-AIE heatmaps, per-prompt traces, QC.

# light rules (seconds, tables only) run on the submitting host under a cluster profile, not as jobs
localrules:
    aie_heatmaps,
    qc,


rule aie:
    conda:
        "../../envs/factrace.yaml"
    input:
        lambda wc: expand(
            f"{R}/trace/{wc.model}/{wc.modality}/{{kind}}/shard-{{shard}}.parquet", kind=KINDS, shard=sorted(SHARDS)
        ),
    output:
        f"{R}/aie/{{model}}/{{modality}}.parquet",
    params:
        n_boot=config["aggregate"]["n_boot"],
        combine=config["aggregate"]["combine"],
        seed=SEED,
    log:
        f"{R}/logs/aie/{{model}}/{{modality}}.log",
    benchmark:
        f"{R}/benchmarks/aie/{{model}}/{{modality}}.tsv",
    shell:
        "factrace aie --inputs {input:q} --n-boot {params.n_boot:q} --combine {params.combine:q} "
        "--seed {params.seed:q} --out {output:q} 2> {log:q}"


rule aie_heatmaps:
    conda:
        "../../envs/factrace.yaml"
    input:
        aie=f"{R}/aie/{{model}}/{{modality}}.parquet",
        # every model and modality: each kind's colour scale is Figure 2's, so one colour is one AIE everywhere
        scale=[f"{R}/aie/{m}/{mod}.parquet" for m, mod in model_modalities()],
        fates=f"{R}/qc/fates.parquet",  # a fact set with no traced fact: an empty row, n = 0, with why
    output:
        png=report(f"{R}/figures/aie_{{model}}_{{modality}}.png", caption="../report/aie_heatmaps.rst",
                   category="Causal traces"),
        pdf=f"{R}/figures/aie_{{model}}_{{modality}}.pdf",
    params:
        label=lambda wc: model_label(wc.model),
        window=lambda wc: model_window(wc.model),  # the caption's (the panels' titles read the AIE table's)
        n_layers=lambda wc: model_cfg(wc.model)["n_layers"],
    log:
        f"{R}/logs/aie_heatmaps/{{model}}_{{modality}}.log",
    benchmark:
        f"{R}/benchmarks/aie_heatmaps/{{model}}_{{modality}}.tsv",
    shell:
        "factrace figure heatmaps --aie {input.aie:q} --label {params.label:q} --scale-from {input.scale:q} "
        "--fates {input.fates:q} --out {output.png:q} 2> {log:q}"


rule prompt_plots:
    """ROME-style per-prompt traces (hidden / MLP / attention) for the first few traced facts."""
    conda:
        "../../envs/factrace.yaml"
    input:
        traces=lambda wc: expand(
            f"{R}/trace/{wc.model}/{wc.modality}/{{kind}}/shard-{{shard}}.parquet", kind=KINDS, shard=sorted(SHARDS)
        ),
        token_map=lambda wc: (
            shard_paths(f"{R}/speech/token_map/{wc.model}/shard-{{shard}}.parquet") if wc.modality == "s2t" else []
        ),
        # each plot's title: the prompt and its attribute, and the token traced
        prompts=shard_paths(f"{R}/prompts/shard-{{shard}}.parquet"),
        filters=lambda wc: shard_paths(f"{R}/filter/{wc.model}/{wc.modality}/shard-{{shard}}.parquet"),
    output:
        touch(f"{R}/figures/prompts/{{model}}_{{modality}}.done"),
    params:
        n=config["figures"]["prompt_plots"],
        combine=config["aggregate"]["combine"],
        outdir=lambda wc, output: str(Path(output[0]).parent),
        prefix=lambda wc: f"{wc.model}_{wc.modality}",
        token_map=lambda wc, input: ["--token-map", *input.token_map] if input.token_map else [],
    log:
        f"{R}/logs/prompt_plots/{{model}}_{{modality}}.log",
    benchmark:
        f"{R}/benchmarks/prompt_plots/{{model}}_{{modality}}.tsv",
    shell:
        "factrace figure prompts --traces {input.traces:q} {params.token_map:q} --n {params.n:q} "
        "--prompts {input.prompts:q} --filters {input.filters:q} --combine {params.combine:q} --outdir {params.outdir:q} --prefix {params.prefix:q} 2> {log:q}"


rule qc:
    """Facts counted at each stage, and every fact's fate per model and modality (dropped by the filter, not
    traced because of the cap `tracing.max_facts_per_shard` or `models.<name>.max_facts_per_shard`, traced, failed), with the reason,
    and in S->T its fact set where the speech LM's checkpoint records them (heard in speech, learnt in text only)."""
    conda:
        "../../envs/factrace.yaml"
    input:
        prompts=shard_paths(f"{R}/prompts/shard-{{shard}}.parquet"),
        filters=[f"{R}/filter/{m}/{mod}/shard-{s}.parquet" for m, mod in model_modalities() for s in sorted(SHARDS)],
        traces=[
            f"{R}/trace/{m}/{mod}/{KINDS[0]}/shard-{s}.parquet" for m, mod in model_modalities() for s in sorted(SHARDS)
        ],
    output:
        tsv=f"{R}/qc/qc.tsv",
        fates=f"{R}/qc/fates.parquet",
    params:
        max_facts=max_facts_qc_args(),
        fact_sets=fact_sets_qc_args(),
    log:
        f"{R}/logs/qc.log",
    benchmark:
        f"{R}/benchmarks/qc.tsv",
    shell:
        "factrace qc --prompts {input.prompts:q} --filters {input.filters:q} --traces {input.traces:q} "
        "{params.max_facts:q} {params.fact_sets:q} --out {output.tsv:q} --fates {output.fates:q} 2> {log:q}"
