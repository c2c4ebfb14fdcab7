# Across models and modalities: the paper's Figure 2, effect sizes, paired T->T vs S->T tests. `figure2_rows()` plans a
# row per (model, modality); the job splits a speech LM's S->T row by the AIE tables' `fact_set` (facts heard in
# speech, facts learnt in text only) where its checkpoint records the sets (factrace.analysis.rows).

rule compare:
    conda:
        "../../envs/factrace.yaml"
    input:
        aie=[f"{R}/aie/{m}/{mod}.parquet" for m, mod in model_modalities()],
        traces=both_modality_traces(),
        # a fact set with no traced fact (every fact of it dropped by the filter) is still a row, n = 0, with why
        fates=f"{R}/qc/fates.parquet",
    output:
        figure=report(f"{R}/figures/figure2.png", caption="../report/figure2.rst", category="Figure 2"),
        pdf=f"{R}/figures/figure2.pdf",
        signed=report(f"{R}/figures/figure2_signed.png", caption="../report/figure2_signed.rst",
                      category="Figure 2"),
        signed_pdf=f"{R}/figures/figure2_signed.pdf",
        peaks=f"{R}/compare/peaks.csv",  # shown in the report as HTML (report.smk)
        category_peaks=f"{R}/compare/category_peaks.csv",
        category_ratios=f"{R}/compare/category_ratios.csv",
        tests=f"{R}/compare/tests.csv",
        tests_dropped=f"{R}/compare/tests_dropped.csv",
        cells=f"{R}/compare/figure2_cells.csv",
    params:
        rows=json.dumps(figure2_rows()),
        n_perm=config["aggregate"]["n_perm"],
        exact_max_n=config["aggregate"]["exact_max_n"],
        min_facts=config["aggregate"]["min_facts"],
        combine=config["aggregate"]["combine"],
        seed=SEED,
        outdir=lambda wc, output: str(Path(output.peaks).parent),
    log:
        f"{R}/logs/compare.log",
    benchmark:
        f"{R}/benchmarks/compare.tsv",
    shell:
        "factrace compare --aie {input.aie:q} --rows {params.rows:q} --traces {input.traces:q} --fates {input.fates:q} "
        "--n-perm {params.n_perm:q} "
        "--exact-max-n {params.exact_max_n:q} --min-facts {params.min_facts:q} "
        "--combine {params.combine:q} --seed {params.seed:q} --figure {output.figure:q} "
        "--figure-signed {output.signed:q} --outdir {params.outdir:q} 2> {log:q}"
