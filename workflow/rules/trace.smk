# Causal tracing: the noise scale per (model, modality), then one job per (model, modality, shard) that loads the
# model once and traces every kind and every layer, writing one table per kind. A job that is rerun because a
# kind-specific setting changed (the model's window: mlp/attn only) keeps the tables whose settings did not change.


rule noise_scale:
    """Noise scale = multiplier x std of the subjects' input embeddings over all facts (ROME), the multiplier
    computed by the noise rule (factrace/core/noise_rule.py) on the facts that the trace jobs trace.

    The prompt tables are `ancient` and the subjects' digest is a param: the std is recomputed when a subject
    changes, not when a prompt elsewhere in a shard is edited. The filter tables are inputs: the multiplier is
    measured on the facts they keep (at most max_facts_per_shard of each shard, as the trace jobs), so a change in
    what any shard keeps reruns this job, and through its noise JSON the model's trace jobs."""
    conda:
        "../../envs/factrace.yaml"
    input:
        unpack(noise_speech_inputs),
        prompts=[ancient(p) for p in shard_paths(f"{R}/prompts/shard-{{shard}}.parquet")],
        filters=noise_filter_inputs,
        model=lambda wc: model_input(wc.model),
    output:
        f"{R}/noise/{{model}}/{{modality}}.json",
    params:
        subjects=SUBJECTS_DIGEST,
        spec=lambda wc: model_spec_json(wc.model),
        rule=noise_rule_args(),
        samples=TRACING["samples"],
        seed=SEED,
        max_facts=max_facts_args,
        speech=noise_speech_args,
    priority: 5  # model loads and ASR before light jobs: the demo's long SmolLM2 traces start early, beside the
    # speech LM's build, instead of finishing alone (README: Measured)
    log:
        f"{R}/logs/noise_scale/{{model}}/{{modality}}.log",
    benchmark:
        f"{R}/benchmarks/noise_scale/{{model}}/{{modality}}.tsv",
    resources:
        gpu=model_gpus,
        mem_mb=model_mem_mb,
        runtime=model_runtime("noise_scale"),
    shell:
        "factrace noise-scale --model {wildcards.model:q} --model-spec {params.spec:q} "
        "--modality {wildcards.modality:q} --prompts {input.prompts:q} --filters {input.filters:q} "
        "{params.speech:q} {params.rule:q} --samples {params.samples:q} --seed {params.seed:q} "
        "{params.max_facts:q} --out {output:q} 2> {log:q}"


rule trace:
    """Every kind and layer of one shard, one model load. Outputs are `update`: the job keeps a kind's table when
    that kind's settings (params `kinds`) and the inputs are unchanged, and retraces the others."""
    conda:
        "../../envs/factrace.yaml"
    input:
        unpack(speech_shard_inputs),
        prompts=f"{R}/prompts/shard-{{shard}}.parquet",
        filter=f"{R}/filter/{{model}}/{{modality}}/shard-{{shard}}.parquet",
        noise=f"{R}/noise/{{model}}/{{modality}}.json",
        model=lambda wc: model_input(wc.model),
    output:
        [update(f"{R}/trace/{{model}}/{{modality}}/{kind}/shard-{{shard}}.parquet") for kind in KINDS],
    params:
        spec=lambda wc: model_spec_json(wc.model),
        kinds=trace_kind_settings,
        engine=TRACING["engine"],
        max_rows=TRACING["max_rows"],
        max_facts=max_facts_args,
        speech=trace_speech_args,
    priority: 6  # model loads and ASR (5) before light jobs, and a ready trace before the other model loads: the
    # demo's long SmolLM2 traces start as soon as a core is free, instead of finishing alone (README: Measured)
    log:
        f"{R}/logs/trace/{{model}}/{{modality}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/trace/{{model}}/{{modality}}/{{shard}}.tsv",
    resources:
        gpu=model_gpus,
        mem_mb=model_mem_mb,
        runtime=model_runtime("trace"),
    shell:
        "factrace trace --model {wildcards.model:q} --model-spec {params.spec:q} --modality {wildcards.modality:q} "
        "--kind-settings {params.kinds:q} --prompts {input.prompts:q} --filter {input.filter:q} "
        "--noise {input.noise:q} {params.speech:q} --engine {params.engine:q} --max-rows {params.max_rows:q} "
        "{params.max_facts:q} --out {output:q} 2> {log:q}"
