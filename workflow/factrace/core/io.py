"""Reading and writing the stage tables: atomic Parquet writes with provenance, validated reads."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from factrace.core import contracts
from factrace.core.provenance import Provenance

META_KEY = b"factrace"


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: 0666 less the umask (0644 under 022)."""
    return 0o666 & ~current_umask()


def apply_umask(root: str | os.PathLike[str]) -> None:
    """Give every file and directory under ``root`` (or ``root`` itself) the umask's mode: some writers make 0600
    files (safetensors) or 0700 directories (temporary staging directories)."""
    root = Path(root)
    mode, dir_mode = file_mode(), 0o777 & ~current_umask()
    for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
        if path.is_symlink():
            continue
        if path.is_file():
            os.chmod(path, mode)
        elif path.is_dir():
            os.chmod(path, dir_mode)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A killed job therefore never leaves a file that looks finished.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; a result file follows the umask like any other file
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_table(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    contract: str | None,
    provenance: Provenance | Mapping[str, Any] | None = None,
) -> Path:
    """Validate ``df`` against ``contract`` and write it atomically with provenance in the schema metadata and
    each column's description (:data:`factrace.core.contracts.DESCRIPTIONS`) in its field's metadata."""
    if contract is not None:
        contracts.check(df, contract, source=str(path))
    table = with_descriptions(pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False), contract)
    prov = provenance.to_dict() if isinstance(provenance, Provenance) else dict(provenance or {})
    prov.setdefault("contract", contract)
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps(prov, sort_keys=True).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


DESCRIPTION_KEY = b"description"


def with_descriptions(table: pa.Table, contract: str | None) -> pa.Table:
    """``table`` with each column that ``contract`` describes carrying its description as field metadata."""
    fields = []
    for f in table.schema:
        desc = contracts.description(contract, f.name)
        if desc is not None:
            f = f.with_metadata({**(f.metadata or {}), DESCRIPTION_KEY: desc.encode()})
        fields.append(f)
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def column_descriptions(path: str | os.PathLike[str]) -> list[tuple[str, str, str | None]]:
    """(column, Arrow type, description) of each column of a Parquet file: the description its schema stores,
    else the one of the contract its provenance names, else None."""
    schema = pq.read_schema(path)
    raw = (schema.metadata or {}).get(META_KEY)
    contract = json.loads(raw).get("contract") if raw else None
    out = []
    for f in schema:
        stored = (f.metadata or {}).get(DESCRIPTION_KEY)
        out.append((f.name, str(f.type), stored.decode() if stored else contracts.description(contract, f.name)))
    return out


def read_table(path: str | os.PathLike[str], contract: str | None = None) -> pd.DataFrame:
    """Read a stage table, checking that it is whole and satisfies ``contract``.

    A truncated or corrupted file raises a ContractError that names the file and says how to rebuild it.
    """
    try:
        df = pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        import shlex

        raise contracts.ContractError(
            f"{path}: not a readable Parquet file ({err}). Rebuild it, and what depends on it, by removing it and "
            f"rerunning the workflow (every table is a target of `snakemake`): rm -- {shlex.quote(str(path))} && "
            "snakemake <your usual options>. `factrace check-tables <results dir>` lists every damaged table."
        ) from err
    if contract is not None:
        contracts.check(df, contract, source=str(path))
    return df


def read_tables(paths: list[str] | list[Path], contract: str | None = None) -> pd.DataFrame:
    """Concatenate several shard tables of one contract (an empty contract table when there are none)."""
    frames = [read_table(p, contract) for p in paths]
    frames = [f for f in frames if len(f)]
    if not frames:
        return contracts.empty(contract) if contract else pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance dictionary stored in a Parquet file's schema metadata."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(META_KEY)
    return json.loads(raw) if raw else {}


def merged_provenance(paths: list[str] | list[Path], stage: str = "merge") -> dict[str, Any]:
    """Provenance for a table concatenated from ``paths``: theirs, merged (see provenance.merge_provenance)."""
    from factrace.core.provenance import merge_provenance

    try:
        return merge_provenance([read_provenance(p) for p in paths], stage)
    except ValueError as err:
        raise contracts.ContractError(f"{', '.join(map(str, paths))}: {err}") from err


def carried_identity(paths: list[str] | list[Path]) -> dict[str, Any]:
    """``model_id`` and ``weights_sha256`` of a table made from the tables at ``paths`` (an AIE table from its
    traces): the inputs' value where they agree, the sorted list of their values where they differ (a table over
    several models), None where no input records one."""
    provs = [read_provenance(p) for p in paths]
    out: dict[str, Any] = {}
    for key in ("model_id", "weights_sha256"):
        values = sorted({str(v) for p in provs if (v := p.get(key)) is not None})
        out[key] = values[0] if len(values) == 1 else (values or None)
    return out


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
