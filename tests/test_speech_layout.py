"""Issue 23: factrace.speech is a stage layer. No module of it imports the analysis, tracing, filtering, speech LM,
models or reporting layers, and its modules import each other without a cycle (lazy imports in functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

import factrace

ROOT = Path(factrace.__file__).resolve().parent
FORBIDDEN = ("factrace.analysis", "factrace.tracing", "factrace.filtering", "factrace.speechlm", "factrace.models",
             "factrace.reporting")


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    mod, is_pkg = _name(path), path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([node.module] if node.module else []))
            out += [base, *(f"{base}.{a.name}" for a in node.names)]
    return out


def _graph() -> dict[str, list[str]]:
    return {_name(p): _imports(p) for p in sorted((ROOT / "speech").rglob("*.py"))}


def test_speech_imports_no_later_layer():
    bad = [f"{m} imports {t}" for m, ts in _graph().items() for t in ts if t.startswith(FORBIDDEN)]
    assert not bad, bad


def test_speech_modules_import_without_a_cycle():
    graph = _graph()
    edges = {m: sorted({t for t in ts if t in graph and t != m}) for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for d in edges[m]:
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d):], d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[m] = 2

    for m in edges:
        if m not in state:
            visit(m, [])
    assert not cycles, cycles


def test_speech_layout_is_small():
    """No module over 400 lines, no folder with more than 10 modules (``__init__`` not counted)."""
    speech = ROOT / "speech"
    long = [str(p.relative_to(speech)) for p in speech.rglob("*.py") if len(p.read_text().splitlines()) > 400]
    assert not long, long
    for folder in [speech, *(d for d in speech.iterdir() if d.is_dir() and d.name != "__pycache__")]:
        mods = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(mods) <= 10, (folder, len(mods))
