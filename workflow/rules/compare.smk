# Across models and modalities: the paper's Figure 2, effect sizes, paired T->T vs S->T tests.

rule compare:
    conda:
        "../../envs/factrace.yaml"
    input:
        aie=[f"{R}/aie/{m}/{mod}.parquet" for m, mod in model_modalities()],
        traces=both_modality_traces(),
    output:
        figure=report(f"{R}/figures/figure2.png", caption="../report/figure2.rst", category="Figure 2"),
        pdf=f"{R}/figures/figure2.pdf",
        peaks=f"{R}/compare/peaks.csv",  # shown in the report as HTML (report.smk)
        category_peaks=f"{R}/compare/category_peaks.csv",
        **({"tests": f"{R}/compare/tests.csv"} if both_modality_traces() else {}),
    params:
        rows=json.dumps(figure2_rows()),
        n_perm=config.get("aggregate", {}).get("n_perm", 2000),
        combine=config.get("aggregate", {}).get("combine", "mean"),
        seed=SEED,
        outdir=lambda wc, output: str(Path(output.peaks).parent),
    log:
        f"{R}/logs/compare.log",
    shell:
        "factrace compare --aie {input.aie:q} --rows {params.rows:q} --traces {input.traces:q} "
        "--n-perm {params.n_perm} --combine {params.combine} --seed {params.seed} --figure {output.figure:q} --outdir {params.outdir:q} "
        "2> {log}"
