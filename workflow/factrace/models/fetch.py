"""``factrace fetch-checkpoints``: fetch every checkpoint a config names, on a login node (jobs never download).

    factrace fetch-checkpoints --configfile config/paper.yaml [--dry-run]

The list is :func:`factrace.models.checkpoints.required_checkpoints`, the same one the plan-time check reads.
Per source: ``hf:<repo>`` -> ``huggingface_hub.snapshot_download(repo, local_dir=path)`` (a gated repository
needs ``huggingface-cli login``); ``melotts:<language>`` -> MeloTTS's model repository and the BERT tokenizers
its text modules load, into a hub cache at ``<cache_dir>/hf``, and NLTK's tagger and CMUdict into
``<cache_dir>/nltk_data`` (what :mod:`factrace.speech.tts.melotts_worker` points the libraries at);
``url:<address>`` -> the file (with its sha256 when the config gives one); ``manual:`` -> printed, with what
to do. A checkpoint already in place is left alone. ``--dry-run`` prints the plan and fetches nothing.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from factrace.models.checkpoints import Checkpoint, required_checkpoints

log = logging.getLogger(__name__)

#: MeloTTS (English): the model repository, and every BERT tokenizer its text modules load at import time
#: (melo/text/{english,english_bert,chinese_mix,japanese,spanish_bert,french_bert,korean}.py) plus the English
#: BERT model it runs.
MELOTTS_REPOS = {"EN": "myshell-ai/MeloTTS-English", "EN_V2": "myshell-ai/MeloTTS-English-v2",
                 "EN_NEWEST": "myshell-ai/MeloTTS-English-v3"}
MELOTTS_BERT = {"bert-base-uncased": None}  # None: the whole model (weights too)
MELOTTS_TOKENIZERS = ("bert-base-multilingual-uncased", "tohoku-nlp/bert-base-japanese-v3",
                      "dccuchile/bert-base-spanish-wwm-uncased", "dbmdz/bert-base-french-europeana-cased",
                      "kykim/bert-kor-base")
TOKENIZER_FILES = ["*.json", "*.txt", "*.model"]
NLTK_PACKAGES = {  # g2p_en's, for the NLTK versions before and after 3.9
    "taggers/averaged_perceptron_tagger.zip":
        "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/taggers/averaged_perceptron_tagger.zip",
    "taggers/averaged_perceptron_tagger_eng.zip":
        "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/taggers/averaged_perceptron_tagger_eng.zip",
    "corpora/cmudict.zip": "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/cmudict.zip",
}


def plan(c: Checkpoint) -> list[str]:
    """What fetching ``c`` does, one line per download (empty when it is in place)."""
    if c.problem() is None:
        return []
    kind, _, what = c.source.partition(":")
    if kind == "hf":
        return [f"snapshot {what} -> {c.path}"]
    if kind == "melotts":
        hub = c.path / "hf"
        lines = [f"snapshot {MELOTTS_REPOS[what]} -> {hub} (hub cache)"]
        lines += [f"snapshot {r} -> {hub} (hub cache)" for r in MELOTTS_BERT]
        lines += [f"tokenizer {r} -> {hub} (hub cache)" for r in MELOTTS_TOKENIZERS]
        lines += [f"download {url} -> {c.path / 'nltk_data' / rel}" for rel, url in NLTK_PACKAGES.items()]
        return lines
    if kind == "url":
        return [f"download {what} -> {c.path}"]
    return [f"manual: {what}"]


def _download(url: str, dest: Path, sha256: str | None = None) -> None:
    import hashlib
    import os
    import urllib.request

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
        f.write(r.read())
    if sha256 and hashlib.sha256(tmp.read_bytes()).hexdigest() != sha256:
        tmp.unlink()
        raise RuntimeError(f"{url}: sha256 differs from the config's")
    os.replace(tmp, dest)


def fetch(c: Checkpoint) -> None:
    """Fetch one checkpoint into its configured place (nothing when it is there already)."""
    if c.problem() is None:
        log.info("%s: in place (%s)", c.key, c.path)
        return
    kind, _, what = c.source.partition(":")
    if kind == "hf":
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=what, local_dir=str(c.path))
    elif kind == "melotts":
        from huggingface_hub import snapshot_download

        hub = c.path / "hf"
        snapshot_download(repo_id=MELOTTS_REPOS[what], cache_dir=str(hub))
        for repo in MELOTTS_BERT:
            snapshot_download(repo_id=repo, cache_dir=str(hub))
        for repo in MELOTTS_TOKENIZERS:
            snapshot_download(repo_id=repo, cache_dir=str(hub), allow_patterns=TOKENIZER_FILES)
        for rel, url in NLTK_PACKAGES.items():
            _download(url, c.path / "nltk_data" / rel)
    elif kind == "url":
        _download(what, c.path, c.options.get("sha256"))
    else:
        log.warning("%s: %s", c.key, what)
        return
    log.info("%s: fetched into %s", c.key, c.path)


def run(config: dict[str, Any], dry_run: bool = False) -> list[str]:
    """Fetch (or with ``dry_run`` only list) every checkpoint of ``config``; returns the plan's lines."""
    lines = []
    for c in required_checkpoints(config):
        steps = plan(c)
        lines += [f"{c.key}: {s}" for s in steps] or [f"{c.key}: in place ({c.path})"]
        if not dry_run and steps:
            fetch(c)
    return lines


def _cmd(args: argparse.Namespace) -> None:
    from factrace.core.config import load_config

    config = load_config(args.configfile)
    lines = run(config, dry_run=args.dry_run)
    print(("would fetch (dry run):\n  " if args.dry_run else "fetched:\n  ") + "\n  ".join(lines))
    manual = [ln for ln in lines if ": manual: " in ln]
    if manual and not args.dry_run:
        raise SystemExit(f"{len(manual)} checkpoint(s) need a manual download (listed above)")


def register(subparsers: argparse._SubParsersAction) -> None:
    s = subparsers.add_parser("fetch-checkpoints",
                              help="fetch every checkpoint the config names (run on a login node; jobs never download)")
    s.add_argument("--configfile", required=True, help="the config file (merged over the default config)")
    s.add_argument("--dry-run", action="store_true", help="print what would be fetched, fetch nothing")
    s.set_defaults(func=_cmd)
