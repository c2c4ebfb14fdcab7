# Facts: download (cluster configs) and per-shard `prompts` tables.

# light rules (seconds, tables only) run on the submitting host under a cluster profile, not as jobs
localrules:
    shard,
    skipped_facts,


if config["facts"]["url"]:

    # a download runs where the workflow is started (the login node), never as a compute job: compute nodes
    # usually have no internet (`factrace fetch-checkpoints` fetches it beforehand too)
    localrules:
        download_facts,

    rule download_facts:
        conda:
            "../../envs/factrace.yaml"
        output:
            FACTS_PATH,
        params:
            url=config["facts"]["url"],
            sha256=["--sha256", config["facts"]["sha256"]] if config["facts"]["sha256"] else [],
        log:
            f"{R}/logs/download_facts.log",
        shell:
            "factrace download-facts --url {params.url:q} --out {output:q} {params.sha256:q} 2> {log:q}"


rule shard:
    """One shard of the facts. The facts file is `ancient`: a shard reruns when its own facts change (the
    digest in params), not when another shard's facts are edited."""
    conda:
        "../../envs/factrace.yaml"
    input:
        facts=ancient(FACTS_PATH),
    output:
        f"{R}/prompts/shard-{{shard}}.parquet",
    params:
        digest=lambda wc: SHARDS[wc.shard],
        shard_size=SHARD_SIZE,
        limit=["--limit", LIMIT] if LIMIT else [],
    log:
        f"{R}/logs/shard/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/shard/{{shard}}.tsv",
    shell:
        "factrace shard --facts {input.facts:q} --shard {wildcards.shard:q} --shard-size {params.shard_size:q} "
        "{params.limit:q} --out {output:q} 2> {log:q}"


rule skipped_facts:
    """Rows of the facts file that were left out, with the reason (file, row, known_id, reason); the other facts
    go on. The run ends by saying how many there were."""
    conda:
        "../../envs/factrace.yaml"
    input:
        facts=FACTS_PATH,
    output:
        f"{R}/prompts/skipped_facts.parquet",
    log:
        f"{R}/logs/skipped_facts.log",
    benchmark:
        f"{R}/benchmarks/skipped_facts.tsv",
    shell:
        "factrace check-facts --facts {input.facts:q} --out {output:q} 2> {log:q}"
