"""Download the published Known-1000 file (cluster configs only) and validate it before it is used."""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.request
from pathlib import Path

from factrace.core.io import atomic_path
from factrace.facts.known import validate_records

log = logging.getLogger(__name__)


def download_facts(url: str, out: str | Path, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url``, check its sha256 when given, validate the facts, then move it into place atomically."""
    log.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        blob = resp.read()
    digest = hashlib.sha256(blob).hexdigest()
    if sha256 and digest != sha256:
        raise ValueError(f"{url}: sha256 {digest} differs from `facts.sha256` {sha256}; the file changed upstream")
    records = json.loads(blob)
    facts = validate_records(records, url)
    with atomic_path(out) as tmp:
        tmp.write_bytes(blob)
    log.info("%s: %d valid facts (sha256 %s)", out, len(facts), digest)
    return Path(out)
