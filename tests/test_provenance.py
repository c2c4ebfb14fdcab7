"""`factrace provenance FILE` on a trace table written by the trace CLI: package version, model id, weights hash,
config hash, seed and key library versions."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import factrace
from factrace.core.provenance import config_hash
from factrace.models.load import weights_fingerprint
from factrace.tracing.stage import TraceSettings
from test_resume import one_thread, run_cli, save_tiny_model, trace_argv, write_trace_inputs  # noqa: F401


def test_provenance_of_a_trace_table(tmp_path, capsys, one_thread):  # noqa: F811
    model_dir = save_tiny_model(tmp_path / "model")
    inputs = write_trace_inputs(tmp_path / "inputs")
    out = tmp_path / "trace.parquet"
    run_cli(trace_argv(model_dir, inputs, out, kind="hidden", samples=2, max_rows=16, seed=5))
    capsys.readouterr()

    run_cli(["provenance", str(out)])
    prov = json.loads(capsys.readouterr().out)

    assert prov["package_version"] == factrace.__version__
    assert prov["stage"] == "trace" and prov["contract"] == "trace"
    assert prov["model_id"] == "tiny"
    assert prov["weights_sha256"] == weights_fingerprint(model_dir) and len(prov["weights_sha256"]) == 64
    assert prov["seed"] == 5
    settings = TraceSettings(kind="hidden", layers=(0, 6), samples=2, window=3, seed=5, engine="reference",
                             max_rows=16)
    params = {**settings.as_dict(), "noise_scale": 2.0, "modality": "t2t"}
    assert prov["config_hash"] == config_hash(params)  # the hash of the settings that made the table ...
    assert prov["extra"]["params"] == json.loads(json.dumps(params))  # ... which are stored beside it
    for lib in ("torch", "transformers", "numpy", "pandas", "pyarrow"):
        assert prov["libraries"][lib] == metadata.version(lib)
    assert prov["python"]


def test_config_hash_changes_with_settings():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


# ------------------------------------------------------------------------------ merged tables, modes, damage (issue 11)
def _window(tmp_path, lo: int, hi: int, model: str = "tiny"):
    import pandas as pd
    from factrace.core import io
    from factrace.core.contracts import CONTRACTS, empty
    from factrace.core.provenance import Provenance

    df = empty("trace")
    df["token"] = pd.Series(dtype="object")
    params = {**TraceSettings(kind="mlp", layers=(lo, hi), samples=2, window=10, seed=1, engine="fast", max_rows=256).as_dict(), "noise_scale": 1.5,
              "modality": "t2t"}
    prov = Provenance(stage="trace", config_hash=config_hash(params), seed=1, model_id=model,
                      weights_sha256="ab" * 32, extra={"params": params})
    path = tmp_path / f"layers-{lo}-{hi}.parquet"
    io.write_table(df[list(CONTRACTS["trace"]) + ["token"]], path, "trace", prov)
    return path


def test_merged_trace_table_keeps_provenance(tmp_path, capsys):
    """Issue 11 (5): `factrace merge` wrote only {stage: merge, n_inputs}; the windows' model, weights and seed
    were lost. The merged hash is that of one job over all layers."""
    a, b = _window(tmp_path, 0, 3), _window(tmp_path, 3, 6)
    out = tmp_path / "merged.parquet"
    run_cli(["merge", "--contract", "trace", "--inputs", str(a), str(b), "--out", str(out)])
    capsys.readouterr()
    run_cli(["provenance", str(out)])
    prov = json.loads(capsys.readouterr().out)
    assert prov["stage"] == "merge" and prov["contract"] == "trace"
    assert prov["model_id"] == "tiny" and prov["weights_sha256"] == "ab" * 32 and prov["seed"] == 1
    whole = {**TraceSettings(kind="mlp", layers=(0, 6), samples=2, window=10, seed=1, engine="fast",
                                   max_rows=256).as_dict(), "noise_scale": 1.5, "modality": "t2t"}
    assert prov["config_hash"] == config_hash(whole)
    assert [i["layers"] for i in prov["extra"]["inputs"]] == [[0, 3], [3, 6]]


def test_merge_refuses_tables_of_different_models(tmp_path):
    import pytest
    from factrace.core.io import merged_provenance

    a, b = _window(tmp_path, 0, 3), _window(tmp_path, 3, 6, model="other")
    with pytest.raises(ValueError, match="different model_id"):
        merged_provenance([a, b])


def test_written_files_follow_the_umask(tmp_path):
    """Issue 11 (6): atomic writes made every result 0600 (mkstemp)."""
    import os
    import stat

    import pandas as pd
    from factrace.core import io

    for mask, want in ((0o022, 0o644), (0o027, 0o640), (0o002, 0o664)):
        old = os.umask(mask)
        try:
            t = io.write_table(pd.DataFrame({"a": [1]}), tmp_path / f"t{mask}.parquet", None)
            j = io.write_json({"a": 1}, tmp_path / f"j{mask}.json")
            with io.atomic_path(tmp_path / f"c{mask}.csv") as tmp:
                tmp.write_text("a\n1\n")
        finally:
            os.umask(old)
        for p in (t, j, tmp_path / f"c{mask}.csv"):
            assert stat.S_IMODE(p.stat().st_mode) == want, (oct(mask), p.name)


def test_check_tables_names_damaged_tables_and_the_command(tmp_path, capsys):
    """Issue 11 (2, 3): damage is found by a command (read-only), not by parsing; the message names the file, the
    rule that writes it and the command that rebuilds it."""
    import pandas as pd
    import pytest
    from factrace.core import io

    res = tmp_path / "res dir"
    good = io.write_table(pd.DataFrame({"a": [1]}), res / "filter/m/t2t/shard-0000.parquet", None)
    bad = res / "speech/token_map/m/shard-0001.parquet"
    io.write_table(pd.DataFrame({"a": [1]}), bad, None)
    bad.write_bytes(bad.read_bytes()[:20])
    (res / "trace/m/t2t/mlp/shard-0000.parquet.parts").mkdir(parents=True)
    (res / "trace/m/t2t/mlp/shard-0000.parquet.parts/known_1-x.parquet").write_bytes(b"half")  # the job's own
    before = {p: p.read_bytes() for p in res.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as err:
        run_cli(["check-tables", str(res)])
    msg = str(err.value)
    assert "1 damaged table(s)" in msg and str(bad) in msg and "rule `token_map`" in msg
    assert f"rm -- '{bad}'" in msg and str(good) not in msg
    assert {p: p.read_bytes() for p in res.rglob("*") if p.is_file()} == before  # nothing removed
    with pytest.raises(Exception, match="rm -- ") as err:
        io.read_table(bad)


def test_model_directories_follow_the_umask(tmp_path):
    """safetensors writes its files 0600; the model builders (convert, build-speechlm) reset them to the umask."""
    import os
    import stat

    import torch
    from factrace.core.io import apply_umask
    from safetensors.torch import save_file

    old = os.umask(0o022)
    try:
        save_file({"w": torch.zeros(2)}, tmp_path / "model.safetensors")
        apply_umask(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o644
    src = (Path(__file__).resolve().parents[1] / "workflow" / "factrace").glob("**/*.py")
    callers = {p.name for p in src if "apply_umask(tmp)" in p.read_text()}
    assert {"convert.py", "build.py"} <= callers
