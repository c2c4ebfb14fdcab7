# Across models and modalities: the paper's Figure 2, effect sizes, paired T->T vs S->T tests.

MOD_LABEL = {"t2t": "T->T", "s2t": "S->T"}


def figure2_rows():
    """Backbones first, then each speech LM in T->T and S->T (the paper's row order)."""
    order = sorted(model_modalities(), key=lambda mm: (model_cfg(mm[0]).get("role", "backbone") != "backbone", mm))
    return [[m, mod, f"{model_cfg(m).get('label', m)} {MOD_LABEL[mod]}"] for m, mod in order]


def both_modality_traces():
    models = [m for m in config["models"] if {"t2t", "s2t"} <= set(model_cfg(m).get("modalities", []))]
    return [
        f"{R}/trace/{m}/{mod}/{k}/shard-{s}.parquet"
        for m in models
        for mod in ("t2t", "s2t")
        for k in KINDS
        for s in sorted(SHARDS)
    ]


rule compare:
    input:
        aie=[f"{R}/aie/{m}/{mod}.parquet" for m, mod in model_modalities()],
        traces=both_modality_traces(),
    output:
        figure=report(f"{R}/figures/figure2.png", caption="../report/figure2.rst", category="Figure 2"),
        pdf=f"{R}/figures/figure2.pdf",
        peaks=report(f"{R}/compare/peaks.csv", caption="../report/peaks.rst", category="Statistics"),
        category_peaks=f"{R}/compare/category_peaks.csv",
    params:
        rows=json.dumps(figure2_rows()),
        n_perm=config.get("aggregate", {}).get("n_perm", 2000),
        combine=config.get("aggregate", {}).get("combine", "mean"),
        seed=SEED,
        outdir=lambda wc, output: str(Path(output.peaks).parent),
        traces=lambda wc, input: f"--traces {' '.join(input.traces)}" if input.traces else "",
    log:
        f"{R}/logs/compare.log",
    shell:
        "factrace compare --aie {input.aie:q} --rows {params.rows:q} {params.traces} --n-perm {params.n_perm} "
        "--combine {params.combine} --seed {params.seed} --figure {output.figure:q} --outdir {params.outdir:q} "
        "2> {log}"
