# Causal tracing: the noise scale per (model, modality), then one job per (shard, model, modality, kind, layer
# window), merged per shard. A failed window reruns alone; windows of one shard spread over several GPUs.

# light rules (seconds, tables only) run on the submitting host under a cluster profile, not as jobs
localrules:
    merge_trace,


rule noise_scale:
    """Noise scale = multiplier x std of the subjects' input embeddings over all facts (ROME).

    The shard tables are `ancient` and the subjects' digest is a param: the scale is recomputed when a subject
    changes, not when a prompt elsewhere in a shard is edited (which would otherwise re-trace every shard)."""
    conda:
        "../../envs/factrace.yaml"
    input:
        unpack(noise_speech_inputs),
        prompts=[ancient(p) for p in shard_paths(f"{R}/prompts/shard-{{shard}}.parquet")],
        model=lambda wc: model_input(wc.model),
    output:
        f"{R}/noise/{{model}}/{{modality}}.json",
    params:
        subjects=SUBJECTS_DIGEST,
        spec=lambda wc: model_spec_json(wc.model),
        multiplier=lambda wc: (
            TRACING.get("noise_multiplier_s2t") or TRACING.get("noise_multiplier", 3.0)
            if wc.modality == "s2t"
            else TRACING.get("noise_multiplier", 3.0)
        ),
        speech=lambda wc, input: (
            ["--speech-tokens", *input.speech_tokens, "--token-map", *input.token_map] if wc.modality == "s2t" else []
        ),
    log:
        f"{R}/logs/noise_scale/{{model}}/{{modality}}.log",
    shell:
        "factrace noise-scale --model {wildcards.model:q} --model-spec {params.spec:q} "
        "--modality {wildcards.modality:q} --prompts {input.prompts:q} {params.speech:q} "
        "--multiplier {params.multiplier:q} --out {output:q} 2> {log:q}"


rule trace:
    conda:
        "../../envs/factrace.yaml"
    input:
        unpack(speech_shard_inputs),
        prompts=f"{R}/prompts/shard-{{shard}}.parquet",
        filter=f"{R}/filter/{{model}}/{{modality}}/shard-{{shard}}.parquet",
        noise=f"{R}/noise/{{model}}/{{modality}}.json",
        model=lambda wc: model_input(wc.model),
    output:
        f"{R}/trace/{{model}}/{{modality}}/{{kind}}/shard-{{shard}}/layers-{{lo}}-{{hi}}.parquet",
    params:
        spec=lambda wc: model_spec_json(wc.model),
        samples=TRACING.get("samples", 10),
        window=TRACING.get("window", 10),
        engine=TRACING.get("engine", "fast"),
        max_rows=TRACING.get("max_rows", 256),
        max_facts=["--max-facts", TRACING["max_facts_per_shard"]] if TRACING.get("max_facts_per_shard") else [],
        seed=SEED,
        speech=lambda wc, input: (
            ["--speech-tokens", input.speech_tokens, "--token-map", input.token_map] if wc.modality == "s2t" else []
        ),
    log:
        f"{R}/logs/trace/{{model}}/{{modality}}/{{kind}}/{{shard}}-{{lo}}-{{hi}}.log",
    resources:
        gpu=lambda wc: config.get("resources", {}).get("trace", {}).get("gpus", 0),
        mem_mb=lambda wc, attempt: config.get("resources", {}).get("trace", {}).get("mem_mb", 4000) * attempt,
        runtime=trace_runtime,
    shell:
        "factrace trace --model {wildcards.model:q} --model-spec {params.spec:q} --modality {wildcards.modality:q} "
        "--kind {wildcards.kind:q} --layer-lo {wildcards.lo:q} --layer-hi {wildcards.hi:q} "
        "--prompts {input.prompts:q} --filter {input.filter:q} --noise {input.noise:q} {params.speech:q} "
        "--samples {params.samples:q} --window {params.window:q} --seed {params.seed:q} --engine {params.engine:q} "
        "--max-rows {params.max_rows:q} {params.max_facts:q} --out {output:q} 2> {log:q}"


rule merge_trace:
    """The layer windows of one shard and kind, merged into one table (equal to a single-job run)."""
    conda:
        "../../envs/factrace.yaml"
    input:
        lambda wc: [
            f"{R}/trace/{wc.model}/{wc.modality}/{wc.kind}/shard-{wc.shard}/layers-{lo}-{hi}.parquet"
            for lo, hi in layer_windows(wc.model)
        ],
    output:
        f"{R}/trace/{{model}}/{{modality}}/{{kind}}/shard-{{shard}}.parquet",
    log:
        f"{R}/logs/merge_trace/{{model}}/{{modality}}/{{kind}}/{{shard}}.log",
    shell:
        "factrace merge --contract trace --inputs {input:q} --out {output:q} 2> {log:q}"
