# The offline speech LM, built in two stages as SpiritLM (a text backbone, then its speech adaptation), and the
# text-vs-speech modality gap.

# light rules (seconds, tables only) run on the submitting host under a cluster profile, not as jobs
localrules:
    modality_gap_plot,


rule build_speechlm_backbone:
    """Stage 1 of the offline speech LM: a small Llama text backbone trained from scratch on the text of the
    traced facts and the extra facts of their templates (see factrace/models/offline_speechlm/build.py)."""
    conda:
        "../../envs/factrace.yaml"
    input:
        facts=ancient(FACTS_PATH),
        extra=SPEECHLM["extra_facts"],
    output:
        model=directory(f"{R}/models/backbone/{{model}}"),
        eval=f"{R}/speechlm/{{model}}/backbone_eval.json",  # shown in the report as HTML (report.smk)
    params:
        steps=SPEECHLM["backbone_steps"],
        arch=lambda wc: backbone_architecture_args(wc.model),
        seed=SEED,
        noise=noise_rule_args(),
        samples=TRACING["samples"],
        facts=FACTS_DIGEST,  # the facts it is trained on: other facts rebuild it
    wildcard_constraints:
        model=converted_models("speechlm-backbone"),
    # one thread: a two-thread job waits until both of 2 cores are free at once, which the stream of one-thread
    # jobs (TTS, SmolLM2's traces) delays to the end of a local run; the model is small, a second thread gains little
    threads: 1
    priority: 10  # on the critical path of every speech-LM job
    log:
        f"{R}/logs/build_speechlm_backbone/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/build_speechlm_backbone/{{model}}.tsv",
    shell:
        "factrace build-speechlm-backbone --facts {input.facts:q} --extra-facts {input.extra:q} "
        "--out-dir {output.model:q} --steps {params.steps:q} {params.arch:q} --seed {params.seed:q} "
        "--threads {threads:q} {params.noise:q} --samples {params.samples:q} "
        "--eval-json {output.eval:q} 2> {log:q}"


rule build_speechlm:
    """Stage 2: the backbone with [Text] / [Speech] / [Hu..] embeddings, continued on speech -> text data from
    several eSpeak renderings; evaluated (eval.json) on a held-out rendering, an unheard voice, subject ablations,
    noise and carry-over (see factrace/models/offline_speechlm/build.py)."""
    conda:
        "../../envs/factrace.yaml"
    input:
        facts=ancient(FACTS_PATH),
        units=f"{R}/speech/units/mfcc_kmeans.npz",
        backbone=speechlm_backbone_input,
    output:
        model=directory(f"{R}/models/trained/{{model}}"),
        eval=f"{R}/speechlm/{{model}}/eval.json",  # shown in the report as HTML (report.smk)
    params:
        steps=SPEECHLM["steps"],
        seed=SEED,
        main=ESPEAK_RENDERING,
        extra_renderings=SPEECHLM["extra_renderings"],
        text_only=SPEECHLM["text_only_fraction"],
        trainable=lambda wc: [] if SPEECHLM["trainable_layers"] is None else ["--trainable-layers", SPEECHLM["trainable_layers"]],
        margin=TRACING["subject_margin_s2t"],
        noise=noise_rule_args(),
        samples=TRACING["samples"],
        facts=FACTS_DIGEST,  # the facts it is trained on: other facts rebuild it
    wildcard_constraints:
        model=converted_models("speechlm-offline"),
    threads: 1  # see build_speechlm_backbone
    priority: 10
    log:
        f"{R}/logs/build_speechlm/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/build_speechlm/{{model}}.tsv",
    shell:
        "factrace build-speechlm --facts {input.facts:q} --units {input.units:q} --backbone {input.backbone:q} "
        "--out-dir {output.model:q} --main {params.main:q} --steps {params.steps:q} --seed {params.seed:q} "
        "--threads {threads:q} --extra-renderings {params.extra_renderings:q} "
        "--text-only-fraction {params.text_only:q} {params.trainable:q} --subject-margin {params.margin:q} "
        "{params.noise:q} --samples {params.samples:q} --eval-json {output.eval:q} 2> {log:q}"


rule modality_gap:
    """Per layer: cosine similarity and Euclidean distance of the text and speech hidden states of each fact."""
    conda:
        "../../envs/factrace.yaml"
    input:
        prompts=shard_paths(f"{R}/prompts/shard-{{shard}}.parquet"),
        speech_tokens=shard_paths(f"{R}/speech/tokens/shard-{{shard}}.parquet"),
        token_map=lambda wc: shard_paths(f"{R}/speech/token_map/{wc.model}/shard-{{shard}}.parquet"),
        filters=lambda wc: [
            f"{R}/filter/{wc.model}/{mod}/shard-{s}.parquet" for mod in ("t2t", "s2t") for s in sorted(SHARDS)
        ],
        model=lambda wc: model_input(wc.model),
    output:
        f"{R}/gap/{{model}}.parquet",
    params:
        spec=lambda wc: model_spec_json(wc.model),
    log:
        f"{R}/logs/modality_gap/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/modality_gap/{{model}}.tsv",
    resources:
        gpu=model_gpus,
        mem_mb=model_mem_mb,
        runtime=model_runtime("modality_gap"),
    shell:
        "factrace modality-gap --model {wildcards.model:q} --model-spec {params.spec:q} "
        "--prompts {input.prompts:q} --speech-tokens {input.speech_tokens:q} --token-map {input.token_map:q} "
        "--filters {input.filters:q} --out {output:q} 2> {log:q}"


rule modality_gap_plot:
    conda:
        "../../envs/factrace.yaml"
    input:
        f"{R}/gap/{{model}}.parquet",
    output:
        png=report(f"{R}/figures/modality_gap_{{model}}.png", caption="../report/gap.rst", category="Modality gap"),
        pdf=f"{R}/figures/modality_gap_{{model}}.pdf",
    params:
        label=lambda wc: model_label(wc.model),
        n_boot=config["aggregate"]["n_boot"],
        seed=SEED,
    log:
        f"{R}/logs/modality_gap_plot/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/modality_gap_plot/{{model}}.tsv",
    shell:
        "factrace figure gap --gap {input:q} --label {params.label:q} --n-boot {params.n_boot:q} "
        "--seed {params.seed:q} --out {output.png:q} 2> {log:q}"


rule speechlm_sweep_variant:
    """One variant of speech.speechlm.sweep: both stages built as rules build_speechlm_backbone and build_speechlm
    build them, and evaluated (a row of `make sweep`; not in the default target). The variants table is `ancient`
    and the variant's own cells are a param: editing or adding a row reruns that row's job only."""
    conda:
        "../../envs/factrace.yaml"
    input:
        facts=ancient(FACTS_PATH),
        extra=SPEECHLM["extra_facts"],
        units=f"{R}/speech/units/mfcc_kmeans.npz",
        variants=ancient(SPEECHLM["sweep"]),
    output:
        row=f"{R}/sweep/rows/{{variant}}.tsv",
        work=temp(directory(f"{R}/sweep/work/{{variant}}")),
    params:
        cells=lambda wc: variant_cells(SPEECHLM["sweep"], wc.variant),
        base=lambda wc: sweep_base(),
        extra_renderings=SPEECHLM["extra_renderings"],
        margin=TRACING["subject_margin_s2t"],
        noise=noise_rule_args(),
        samples=TRACING["samples"],
    log:
        f"{R}/logs/speechlm_sweep_variant/{{variant}}.log",
    benchmark:
        f"{R}/benchmarks/speechlm_sweep_variant/{{variant}}.tsv"
    shell:
        "factrace speechlm-sweep --variants {input.variants:q} --name {wildcards.variant:q} --base {params.base:q} "
        "--facts {input.facts:q} "
        "--extra-facts {input.extra:q} --units {input.units:q} --extra-renderings {params.extra_renderings:q} "
        "{params.noise:q} --samples {params.samples:q} --subject-margin {params.margin:q} --work {output.work:q} "
        "--out {output.row:q} 2> {log:q}"


rule speechlm_sweep:
    """Carry-over of the offline speech LM against its build settings: the variants' rows as one table."""
    conda:
        "../../envs/factrace.yaml"
    input:
        rows=expand(f"{R}/sweep/rows/{{variant}}.tsv", variant=SWEEP_VARIANTS),
        variants=SPEECHLM["sweep"],
    output:
        f"{R}/sweep/speechlm_sweep.tsv",
    log:
        f"{R}/logs/speechlm_sweep.log",
    benchmark:
        f"{R}/benchmarks/speechlm_sweep.tsv"
    shell:
        "factrace speechlm-sweep-table --rows {input.rows:q} --variants {input.variants:q} --out {output:q} "
        "> {log:q} 2>&1 && cat {log:q}"
