"""`factrace provenance FILE` on a trace table written by the trace CLI: package version, model id, weights hash,
config hash, seed and key library versions."""

from __future__ import annotations

import json
from importlib import metadata

import factrace
from factrace.models.load import weights_fingerprint
from factrace.provenance import config_hash
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
