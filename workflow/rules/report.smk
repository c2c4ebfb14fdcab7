# Report pages: the result tables and the per-prompt trace plots as HTML, shown inline by `snakemake --report`.


# light rules (HTML from small tables) run on the submitting host under a cluster profile, not as jobs
localrules:
    report_qc,
    report_effects,
    report_alignment,
    report_speechlm_eval,
    report_prompt_plots,
    report_landing,


rule report_qc:
    """Every fact's fate per model and modality, and the counts per stage."""
    conda:
        "../../envs/factrace.yaml"
    input:
        fates=f"{R}/qc/fates.parquet",
        counts=f"{R}/qc/qc.tsv",
    output:
        report(f"{R}/report/qc.html", caption="../report/qc.rst", category="Quality control", labels={"table": "QC"}),
    params:
        title="Quality control: every fact's fate",
    log:
        f"{R}/logs/report/qc.log",
    benchmark:
        f"{R}/benchmarks/report/qc.tsv",
    shell:
        "factrace report-tables --inputs {input.fates:q} {input.counts:q} --title {params.title:q} --out {output:q} "
        "2> {log:q}"


rule report_effects:
    """Peak effects, peaks per token category and (speech LMs) the paired T->T vs S->T tests."""
    conda:
        "../../envs/factrace.yaml"
    input:
        compare_tables(),
    output:
        report(f"{R}/report/effects.html", caption="../report/peaks.rst", category="Effect sizes and tests",
               labels={"table": "peaks and tests"}),
    params:
        title="Peak effects and T->T vs S->T tests",
    log:
        f"{R}/logs/report/effects.log",
    benchmark:
        f"{R}/benchmarks/report/effects.tsv",
    shell:
        "factrace report-tables --inputs {input:q} --title {params.title:q} --out {output:q} 2> {log:q}"


rule report_alignment:
    conda:
        "../../envs/factrace.yaml"
    input:
        f"{R}/speech/alignment_disagreement.tsv",
    output:
        report(f"{R}/report/alignment.html", caption="../report/alignment.rst", category="Speech",
               labels={"table": "alignment disagreement"}),
    params:
        title="Word-onset disagreement between aligners",
    log:
        f"{R}/logs/report/alignment.log",
    benchmark:
        f"{R}/benchmarks/report/alignment.tsv",
    shell:
        "factrace report-tables --inputs {input:q} --title {params.title:q} --out {output:q} 2> {log:q}"


rule report_speechlm_eval:
    conda:
        "../../envs/factrace.yaml"
    input:
        lambda wc: speechlm_eval_json(wc.model),
    output:
        report(f"{R}/report/speechlm_eval_{{model}}.html", caption="../report/speechlm.rst", category="Speech LM",
               labels={"model": "{model}"}),
    params:
        title=lambda wc: f"Offline speech LM {wc.model}: accuracy from text and speech",
    log:
        f"{R}/logs/report/speechlm_eval_{{model}}.log",
    benchmark:
        f"{R}/benchmarks/report/speechlm_eval_{{model}}.tsv",
    shell:
        "factrace report-tables --inputs {input:q} --title {params.title:q} --out {output:q} 2> {log:q}"


rule report_prompt_plots:
    """The per-prompt trace plots of one model and modality, embedded in one page."""
    conda:
        "../../envs/factrace.yaml"
    input:
        f"{R}/figures/prompts/{{model}}_{{modality}}.done",
    output:
        report(f"{R}/report/prompts_{{model}}_{{modality}}.html", caption="../report/prompts.rst",
               category="Per-prompt traces", labels={"model": "{model}", "modality": "{modality}"}),
    params:
        title=lambda wc: f"Per-prompt causal traces: {model_label(wc.model)} "
        f"{MOD_LABEL[wc.modality]}",
        dir=lambda wc, input: str(Path(input[0]).parent),
        prefix=lambda wc: f"{wc.model}_{wc.modality}_",
    log:
        f"{R}/logs/report/prompts_{{model}}_{{modality}}.log",
    benchmark:
        f"{R}/benchmarks/report/prompts_{{model}}_{{modality}}.tsv",
    shell:
        "factrace report-images --dir {params.dir:q} --prefix {params.prefix:q} "
        "--title {params.title:q} --out {output:q} 2> {log:q}"


rule report_landing:
    """The landing page of `snakemake --report` (workflow/report/workflow.rst includes the RST): Figure 2, what each
    of its rows is (model, modality, fact set, facts traced; the rows split by the QC fates' `fact_set`) and the
    headline tables; the same as a page of its own."""
    conda:
        "../../envs/factrace.yaml"
    input:
        figure2=f"{R}/figures/figure2.png",
        fates=f"{R}/qc/fates.parquet",
        peaks=f"{R}/compare/peaks.csv",
        tests=f"{R}/compare/tests.csv",
    output:
        rst=f"{R}/report/landing.rst",
        html=report(f"{R}/report/summary.html", caption="../report/summary.rst", category="Summary",
                    labels={"page": "Figure 2 and headline numbers"}),
    params:
        rows=json.dumps([[m, mod, label, model_cfg(m)["role"]] for m, mod, label in figure2_rows()]),
        title="factrace: Figure 2 and the headline numbers",
    log:
        f"{R}/logs/report/landing.log",
    benchmark:
        f"{R}/benchmarks/report/landing.tsv",
    shell:
        "factrace report-landing --figure2 {input.figure2:q} --rows {params.rows:q} --fates {input.fates:q} "
        "--peaks {input.peaks:q} --tests {input.tests:q} --title {params.title:q} --out-rst {output.rst:q} "
        "--out-html {output.html:q} 2> {log:q}"
