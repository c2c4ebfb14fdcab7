# Speech data pipeline, per shard: tts -> asr check -> word alignment -> speech tokens -> text-to-speech token map.
# Backends from config `speech:` (offline: eSpeak NG, Whisper tiny.en, eSpeak word onsets / pocketsphinx,
# MFCC + k-means units; cluster: MeloTTS, Whisper-small, HuBERT CTC, SpiritLM HuBERT units).

# light rules (seconds, tables only) run on the submitting host under a cluster profile, not as jobs
localrules:
    wer_summary,
    alignment_disagreement,
    speech_figures,

rule tts_melotts:
    """MeloTTS in its own environment (it pins transformers==4.27.4, which the tracing stack cannot share):
    a small module that needs only melo, soundfile, numpy and pyarrow writes WAVs at MeloTTS's rate. In the
    Apptainer image, FACTRACE_MELOTTS_PYTHON is /opt/melotts/bin/python; with conda, the env's python."""
    conda:
        "../../envs/melotts.yaml"
    input:
        f"{R}/prompts/shard-{{shard}}.parquet",
    output:
        directory(f"{R}/speech/melotts/shard-{{shard}}"),
    params:
        speaker=MELOTTS_OPTS["speaker"],
        speed=MELOTTS_OPTS["speed"],
        device=MELOTTS_OPTS["device"],
        language=MELOTTS_OPTS["language"],
        cache_dir=MELOTTS_OPTS["cache_dir"],
        seed=SEED,
    log:
        f"{R}/logs/tts_melotts/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/tts_melotts/{{shard}}.tsv",
    shell:
        '"${{FACTRACE_MELOTTS_PYTHON:-python}}" -m factrace.speech.tts.melotts_worker --prompts {input:q} '
        "--out-dir {output:q} --speaker {params.speaker:q} --speed {params.speed:q} --device {params.device:q} "
        "--language {params.language:q} --cache-dir {params.cache_dir:q} --seed {params.seed:q} 2> {log:q}"


rule tts:
    conda:
        "../../envs/speech-cluster.yaml"
    input:
        prompts=f"{R}/prompts/shard-{{shard}}.parquet",
        melotts=melotts_dir,
    output:
        manifest=f"{R}/speech/audio/shard-{{shard}}.parquet",
        onsets=f"{R}/speech/audio/shard-{{shard}}.onsets.parquet",
        wavs=directory(f"{R}/speech/audio/shard-{{shard}}"),
    params:
        backend=TTS_OPTS.backend,
        options=json.dumps(TTS_OPTS.options, sort_keys=True),
        melotts=lambda wc, input: ["--melotts-dir", input.melotts[0]] if input.melotts else [],
        seed=SEED,
    priority: 10  # upstream of the speech LM's build (fit_units, build_speechlm): before SmolLM2's long traces
    log:
        f"{R}/logs/tts/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/tts/{{shard}}.tsv",
    shell:
        "factrace tts --prompts {input.prompts:q} --out {output.manifest:q} --audio-dir {output.wavs:q} "
        "--backend {params.backend:q} --options {params.options:q} {params.melotts:q} --seed {params.seed:q} 2> {log:q}"


rule asr:
    """ASR check of the prompt audio: transcript and WER against the prompt text."""
    conda:
        "../../envs/speech-cluster.yaml"
    input:
        f"{R}/speech/audio/shard-{{shard}}.parquet",
    output:
        f"{R}/speech/asr/shard-{{shard}}.parquet",
    params:
        model=ASR["model"],
        device=ASR["device"],
        threshold=["--wer-threshold", ASR["wer_threshold"]] if ASR["wer_threshold"] is not None else [],
    priority: 5  # model loads and ASR before light jobs: the demo's long SmolLM2 traces start early, beside the
    # speech LM's build, instead of finishing alone (README: Measured)
    log:
        f"{R}/logs/asr/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/asr/{{shard}}.tsv",
    shell:
        "factrace asr --audio {input:q} --out {output:q} --model {params.model:q} --device {params.device:q} "
        "{params.threshold:q} 2> {log:q}"


rule wer_summary:
    conda:
        "../../envs/speech-cluster.yaml"
    input:
        shard_paths(f"{R}/speech/asr/shard-{{shard}}.parquet"),
    output:
        json=f"{R}/speech/wer.json",
        png=report(f"{R}/figures/speech/wer_histogram.png", caption="../report/wer.rst", category="Speech"),
    log:
        f"{R}/logs/wer_summary.log",
    benchmark:
        f"{R}/benchmarks/wer_summary.tsv",
    shell:
        "factrace wer-summary --asr {input:q} --out {output.json:q} --figure {output.png:q} 2> {log:q}"


rule align:
    """Word boundaries of each prompt with the configured method (the one the token map uses)."""
    conda:
        "../../envs/speech-cluster.yaml"
    input:
        unpack(align_inputs),
    output:
        f"{R}/speech/alignment/shard-{{shard}}.parquet",
    params:
        method=ALIGN_METHOD,
        extra=align_args(ALIGN_METHOD),
    log:
        f"{R}/logs/align/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/align/{{shard}}.tsv",
    shell:
        "factrace align --audio {input.audio:q} --onsets {input.onsets:q} --prompts {input.prompts:q} "
        "--method {params.method:q} {params.extra:q} --out {output:q} 2> {log:q}"


rule align_other:
    """The same prompts aligned with another method, to measure boundary disagreement."""
    conda:
        "../../envs/speech-cluster.yaml"
    input:
        unpack(align_inputs),
    output:
        f"{R}/speech/alignment-{{method}}/shard-{{shard}}.parquet",
    params:
        extra=lambda wc: align_args(wc.method),
    wildcard_constraints:
        method="pocketsphinx|whisper|hubert-ctc|espeak-onsets",
    log:
        f"{R}/logs/align_other/{{method}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/align_other/{{method}}/{{shard}}.tsv",
    shell:
        "factrace align --audio {input.audio:q} --onsets {input.onsets:q} --prompts {input.prompts:q} "
        "--method {wildcards.method:q} {params.extra:q} --out {output:q} 2> {log:q}"


rule alignment_disagreement:
    """Word-onset disagreement (median, 95th percentile, ms) of each method against the synthesiser's onsets."""
    conda:
        "../../envs/speech-cluster.yaml"
    input:
        reference=shard_paths(f"{R}/speech/audio/shard-{{shard}}.onsets.parquet"),
        others=expand(
            f"{R}/speech/alignment-{{method}}/shard-{{shard}}.parquet",
            method=ALIGN["compare"],
            shard=sorted(SHARDS),
        ),
    output:
        f"{R}/speech/alignment_disagreement.tsv",  # shown in the report as HTML (report.smk)
    params:
        methods=ALIGN["compare"],
    log:
        f"{R}/logs/alignment_disagreement.log",
    benchmark:
        f"{R}/benchmarks/alignment_disagreement.tsv",
    shell:
        "factrace align-compare --reference {input.reference:q} --others {input.others:q} --out {output:q} "
        "2> {log:q}"


rule fit_units:
    """The offline speech tokenizer: k-means over MFCC frames (25 Hz) of all prompt audio.

    Fitted once on the corpus and then kept as a resource (inputs are `ancient`): editing a fact does not refit
    the unit inventory and re-tokenise every shard. Delete the .npz to refit."""
    conda:
        "../../envs/speech-cluster.yaml"
    input:
        [ancient(p) for p in shard_paths(f"{R}/speech/audio/shard-{{shard}}.parquet")],
    output:
        f"{R}/speech/units/mfcc_kmeans.npz",
    params:
        k=UNITS["k"],
        seed=SEED,
    priority: 10  # the speech LM's build waits for it
    log:
        f"{R}/logs/fit_units.log",
    benchmark:
        f"{R}/benchmarks/fit_units.tsv",
    shell:
        "factrace fit-units --audio {input:q} --k {params.k:q} --seed {params.seed:q} --out {output:q} 2> {log:q}"


rule speech_tokens:
    conda:
        "../../envs/spiritlm.yaml"
    input:
        audio=f"{R}/speech/audio/shard-{{shard}}.parquet",
        units=[f"{R}/speech/units/mfcc_kmeans.npz"] if UNITS_BACKEND == "mfcc-kmeans" else [],
    output:
        f"{R}/speech/tokens/shard-{{shard}}.parquet",
    params:
        backend=UNITS_BACKEND,
        dedup="--dedup" if UNITS["dedup"] else "--no-dedup",
        units=lambda wc, input: ["--units", input.units[0]] if input.units else [],
        ckpt=["--checkpoints-dir", UNITS["checkpoints_dir"]] if UNITS["checkpoints_dir"] else [],
    log:
        f"{R}/logs/speech_tokens/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/speech_tokens/{{shard}}.tsv",
    shell:
        "factrace speech-tokens --audio {input.audio:q} {params.units:q} --backend {params.backend:q} "
        "{params.dedup:q} {params.ckpt:q} --out {output:q} 2> {log:q}"


rule token_map:
    """For every text token of the prompt (the model's tokenizer), its [start, end) range of speech tokens."""
    conda:
        "../../envs/speech-cluster.yaml"
    input:
        prompts=f"{R}/prompts/shard-{{shard}}.parquet",
        alignment=f"{R}/speech/alignment/shard-{{shard}}.parquet",
        speech_tokens=f"{R}/speech/tokens/shard-{{shard}}.parquet",
        model=lambda wc: model_input(wc.model),
    output:
        f"{R}/speech/token_map/{{model}}/shard-{{shard}}.parquet",
    params:
        tokenizer=lambda wc: model_cfg(wc.model).get("tokenizer", model_path(wc.model)),
    log:
        f"{R}/logs/token_map/{{model}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/token_map/{{model}}/{{shard}}.tsv",
    shell:
        "factrace token-map --prompts {input.prompts:q} --alignment {input.alignment:q} "
        "--speech-tokens {input.speech_tokens:q} --tokenizer-dir {params.tokenizer:q} --model {wildcards.model:q} "
        "--out {output:q} 2> {log:q}"


rule speech_figures:
    """Spectrograms with word boundaries and speech-token ticks for the first few facts (paper Figure 3)."""
    conda:
        "../../envs/speech-cluster.yaml"
    input:
        audio=f"{R}/speech/audio/shard-{sorted(SHARDS)[0]}.parquet" if SHARDS else [],
        alignment=f"{R}/speech/alignment/shard-{sorted(SHARDS)[0]}.parquet" if SHARDS else [],
        speech_tokens=f"{R}/speech/tokens/shard-{sorted(SHARDS)[0]}.parquet" if SHARDS else [],
    output:
        touch(f"{R}/figures/speech/alignment.done"),
    params:
        n=config["figures"]["spectrograms"],
        outdir=lambda wc, output: str(Path(output[0]).parent),
    log:
        f"{R}/logs/speech_figures.log",
    benchmark:
        f"{R}/benchmarks/speech_figures.tsv",
    shell:
        "factrace speech-figures --audio {input.audio:q} --alignment {input.alignment:q} "
        "--speech-tokens {input.speech_tokens:q} --out-dir {params.outdir:q} --n {params.n:q} 2> {log:q}"
