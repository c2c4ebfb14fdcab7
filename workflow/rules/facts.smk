# Facts: download (cluster configs) and per-shard `prompts` tables.


if config["facts"].get("url"):

    # a download runs where the workflow is started (the login node), never as a compute job: compute nodes
    # usually have no internet (`factrace fetch-checkpoints` fetches it beforehand too)
    localrules:
        download_facts,

    rule download_facts:
        output:
            FACTS_PATH,
        params:
            url=config["facts"]["url"],
            sha256=config["facts"].get("sha256") or "",
        log:
            f"{R}/logs/download_facts.log",
        shell:
            "factrace download-facts --url {params.url:q} --out {output:q} "
            "$( [ -n '{params.sha256}' ] && echo --sha256 {params.sha256} ) 2> {log}"


rule shard:
    """One shard of the facts. The facts file is `ancient`: a shard reruns when its own facts change (the
    digest in params), not when another shard's facts are edited."""
    conda:
        "../../envs/factrace.yaml"
    input:
        facts=FACTS_PATH if DOWNLOADED_FACTS else ancient(FACTS_PATH),
    output:
        f"{R}/prompts/shard-{{shard}}.parquet",
    params:
        digest=lambda wc: SHARDS[wc.shard],
        shard_size=SHARD_SIZE,
        limit=f"--limit {LIMIT}" if LIMIT else "",
    log:
        f"{R}/logs/shard/{{shard}}.log",
    shell:
        "factrace shard --facts {input.facts:q} --shard {wildcards.shard} --shard-size {params.shard_size} "
        "{params.limit} --out {output:q} 2> {log}"
