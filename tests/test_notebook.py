"""examples/analysis.ipynb runs top to bottom on the session's tiny run (tests/tiny_run.py): it reads the AIE,
trace and filter tables, plots one fact's trace, and asserts that the AIE it recomputes from the traces equals
the AIE table's. It is committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from tiny_run import TinyRun

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "analysis.ipynb"


def test_notebook_is_saved_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"cell {i} has outputs: clear them"


@pytest.mark.slow
def test_notebook_runs_on_the_tiny_run(tiny_run: TinyRun, tmp_path, monkeypatch) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("FACTRACE_RESULTS", str(tiny_run.res))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # runs in an empty directory: the notebook finds the results through FACTRACE_RESULTS alone
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "recomputed from the traces" in text, text[-2000:]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the trace heatmap was not drawn"
    assert not any(o.output_type == "error" for o in outputs)
