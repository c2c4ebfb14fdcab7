# The offline speech LM (built by the workflow from the offline corpus) and the text-vs-speech modality gap.

# light rules (seconds, tables only) run on the submitting host under a cluster profile, not as jobs
localrules:
    modality_gap_plot,


rule build_speechlm:
    """A small speech-text Llama trained from scratch on text prompts and on the speech tokens of several eSpeak
    renderings of them, evaluated on a held-out rendering and an unheard voice (see factrace/speechlm/offline.py)."""
    conda:
        "../../envs/factrace.yaml"
    input:
        facts=ancient(FACTS_PATH),
        units=f"{R}/speech/units/mfcc_kmeans.npz",
    output:
        model=directory(f"{R}/models/trained/{{model}}"),
        eval=f"{R}/speechlm/{{model}}/eval.json",  # shown in the report as HTML (report.smk)
    params:
        steps=lambda wc: SPEECHLM.get("steps", 1000),
        seed=SEED,
        main=ESPEAK_RENDERING,
        facts=FACTS_DIGEST,  # the facts it is trained on: other facts rebuild it
    wildcard_constraints:
        model="|".join(n for n, m in config["models"].items() if m.get("convert") == "speechlm-offline") or "^$",
    threads: 2
    priority: 10  # on the critical path of every speech-LM job: start it as soon as the units exist
    log:
        f"{R}/logs/build_speechlm/{{model}}.log",
    shell:
        "factrace build-speechlm --facts {input.facts:q} --units {input.units:q} --out-dir {output.model:q} "
        "--main {params.main:q} --steps {params.steps:q} --seed {params.seed:q} --threads {threads:q} "
        "--eval-json {output.eval:q} 2> {log:q}"


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
    log:
        f"{R}/logs/modality_gap_plot/{{model}}.log",
    shell:
        "factrace figure gap --gap {input:q} --out {output.png:q} 2> {log:q}"
