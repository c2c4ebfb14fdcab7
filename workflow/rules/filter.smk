# Filtering: keep the facts a model answers (greedy generation; exact or partial match) -> Known-t2t / Known-s2t.


rule filter:
    conda:
        "../../envs/factrace.yaml"
    input:
        unpack(speech_shard_inputs),
        asr=asr_shard_input,
        prompts=f"{R}/prompts/shard-{{shard}}.parquet",
        model=lambda wc: model_input(wc.model),
    output:
        f"{R}/filter/{{model}}/{{modality}}/shard-{{shard}}.parquet",
    params:
        spec=lambda wc: model_spec_json(wc.model),
        max_new_tokens=config["filter"]["max_new_tokens"],
        speech=lambda wc, input: (
            ["--speech-tokens", input.speech_tokens, "--token-map", input.token_map, "--asr", input.asr[0]]
            if wc.modality == "s2t"
            else []
        ),
    priority: 5  # model loads and ASR before light jobs: the demo's long SmolLM2 traces start early, beside the
    # speech LM's build, instead of finishing alone (README: Measured)
    log:
        f"{R}/logs/filter/{{model}}/{{modality}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/filter/{{model}}/{{modality}}/{{shard}}.tsv",
    resources:
        gpu=model_gpus,
        mem_mb=model_mem_mb,
        runtime=model_runtime("filter"),
    shell:
        "factrace filter --model {wildcards.model:q} --model-spec {params.spec:q} "
        "--modality {wildcards.modality:q} --prompts {input.prompts:q} --max-new-tokens {params.max_new_tokens:q} "
        "{params.speech:q} --out {output:q} 2> {log:q}"
