"""AIE heatmaps (layer x category): per (model, modality) figures and the paper's Figure 2 grid.

A row is (model, modality, fact set) (:mod:`factrace.analysis.rows`): the rows the workflow plans,
``(model, modality, label)``, are split by the AIE tables' ``fact_set`` column, so that a speech LM whose
checkpoint records which facts it heard in speech shows two S->T rows ("facts heard in speech (n=..)", "facts
learnt in text only (n=..)"), in Figure 2 and in its own figure alike.

Each row of a panel is a category, labelled with its number of facts ``n`` (a row seen in one fact is not an
average), and ``= last token`` where ``prediction`` holds the same cells as ``last token`` (text). The log
panels show ``log10(max(AIE, 1e-4))``: cells with a negative AIE are hatched, and the figure's footnote counts
the cells that are negative or shown at the floor. :func:`figure2_signed` draws the same grid on the signed
AIE with a diverging, symmetric-log colour map, so that negative cells are visible as such.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import SymLogNorm
from matplotlib.patches import Rectangle

from factrace.analysis.aie import LOG_AIE_FLOOR, log_aie
from factrace.analysis.figures.plotting import (
    KIND_CMAP,
    KIND_LABEL,
    MODALITY_LABEL,
    figure_stem,
    no_data,
    save_figure,
    slug,
)
from factrace.analysis.rows import Row, Untraced, row_counts, split_rows, with_fact_set
from factrace.tracing.categories import AIE_CATEGORIES, PREDICTION
from factrace.tracing.method import KINDS, window_caption

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellCounts:
    """Cells of one panel: with an AIE, negative (hatched), in [0, floor) (drawn at the floor)."""
    cells: int
    negative: int
    floored: int


def _raw_matrix(sub: pd.DataFrame, layers: Sequence[int]) -> pd.DataFrame:
    """Signed AIE as a (category x layer) frame, the categories that ``sub`` has (ROME order, then
    ``prediction``), NaN where missing."""
    have = set(sub["category"]) if len(sub) else set()
    cats = [c for c in AIE_CATEGORIES if c in have] or list(AIE_CATEGORIES[:-1])
    mat = sub.pivot_table(index="category", columns="layer", values="aie", aggfunc="mean") if len(sub) \
        else pd.DataFrame(dtype=float)
    return mat.reindex(index=cats, columns=list(layers)).astype(float)


def _row_labels(sub: pd.DataFrame, cats: Sequence[str]) -> list[str]:
    """``category (n=k)``; a range when the kinds differ; ``= last token`` where the cells coincide."""
    labels = []
    for c in cats:
        g = sub[sub["category"] == c]
        per_kind = g.groupby("kind")["n"].max() if len(g) else pd.Series(dtype=int)
        lo, hi = (int(per_kind.min()), int(per_kind.max())) if len(per_kind) else (0, 0)
        n = f"n={lo}" if lo == hi else f"n={lo}-{hi}"
        same = "same_cells_as" in g.columns and c == PREDICTION and (g["same_cells_as"] == "last token").any()
        labels.append(f"{c} = last token ({n})" if same else f"{c} ({n})")
    return labels


def count_cells(raw: np.ndarray, floor: float = LOG_AIE_FLOOR) -> CellCounts:
    v = np.asarray(raw, dtype=float)
    v = v[np.isfinite(v)]
    return CellCounts(int(v.size), int((v < 0).sum()), int(((v >= 0) & (v < floor)).sum()))


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return np.log10(LOG_AIE_FLOOR), 0.0
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _panel(ax: Axes, raw: pd.DataFrame, labels: list[str], kind: str, title: str, show_y: bool,
           signed: bool, lim: tuple[float, float], note: str = "") -> tuple[float, float] | None:
    """Draw one panel; returns its colour limits (vmin, vmax), None for a panel without data (which shows
    ``note``, the row's reason, when it has one)."""
    arr = raw.to_numpy(dtype=float)
    if not np.isfinite(arr).any():
        no_data(ax, textwrap.fill(title, 60), f"n = 0: {note}" if note else "no data")  # wrapped as below
        return None
    if signed:
        m = max(abs(lim[0]), abs(lim[1]), LOG_AIE_FLOOR * 10)
        im = ax.pcolormesh(np.ma.masked_invalid(arr), cmap="RdBu_r", rasterized=True,
                           norm=SymLogNorm(linthresh=LOG_AIE_FLOOR, vmin=-m, vmax=m, base=10))
        label = "AIE (signed, symlog)"
    else:
        # plain pcolormesh, not sns.heatmap: seaborn lays out the whole figure once per heatmap
        im = ax.pcolormesh(np.ma.masked_invalid(log_aie(arr)), cmap=KIND_CMAP.get(kind, "viridis"),
                           vmin=lim[0], vmax=lim[1], rasterized=True)
        label = "log\u2081\u2080 AIE"
        for i, j in zip(*np.nonzero(np.nan_to_num(arr, nan=0.0) < 0)):
            ax.add_patch(Rectangle((j, i), 1, 1, fill=False, hatch="xxx", edgecolor="0.35", linewidth=0))
    ax.set_facecolor("0.93")  # NaN cells (a category absent at that layer) show as light grey
    ax.set_xlim(0, arr.shape[1])
    ax.set_ylim(arr.shape[0], 0)
    ax.set_yticks(np.arange(arr.shape[0]) + 0.5)
    ax.set_yticklabels(labels if show_y else [], fontsize=7)
    layers = list(raw.columns)
    step = max(1, int(np.ceil(len(layers) / 12)))
    ax.set_xticks(np.arange(0, len(layers), step) + 0.5)
    ax.set_xticklabels([str(layers[k]) for k in range(0, len(layers), step)], fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.figure.colorbar(im, ax=ax, label=label)
    ax.set_xlabel("layer")
    ax.set_title(textwrap.fill(title, 60), fontsize=9)  # a split row's label is long: wrapped, not overlapping
    return float(im.norm.vmin), float(im.norm.vmax)


def _footnote(counts: CellCounts, signed: bool) -> str:
    if signed:
        return (f"signed AIE; {counts.negative} of {counts.cells} cells negative (blue); symmetric log scale, "
                f"linear within \u00b1{LOG_AIE_FLOOR:g}")
    return (f"log\u2081\u2080 AIE, floored at {LOG_AIE_FLOOR:g}: {counts.negative} of {counts.cells} cells have a "
            f"negative AIE (hatched), {counts.floored} lie in [0, {LOG_AIE_FLOOR:g}); both are drawn at the floor. "
            "n = facts per category")


def figure_rows(aie_df: pd.DataFrame, rows: Sequence[Sequence], untraced: Untraced | None = None) -> list[Row]:
    """The rows drawn: ``rows`` (``(model, modality, label)``, or :class:`~factrace.analysis.rows.Row`) split by
    the fact sets of ``aie_df``, plus the sets of ``untraced`` with n = 0
    (:func:`~factrace.analysis.rows.split_rows`)."""
    return split_rows(rows, row_counts(aie_df), untraced)


def _matrices(aie_df: pd.DataFrame, rows: Sequence[Row]):
    """Per row: the category labels and the (category x layer) signed AIE of each kind."""
    raws: dict[tuple[int, str], pd.DataFrame] = {}
    labels: dict[int, list[str]] = {}
    aie_df = with_fact_set(aie_df)
    for i, r in enumerate(rows):
        sub = aie_df[(aie_df["model"] == r.model) & (aie_df["modality"] == r.modality)
                     & (aie_df["fact_set"] == r.fact_set)]
        layers = sorted(int(x) for x in sub["layer"].dropna().unique())
        cats = [c for c in AIE_CATEGORIES if c in set(sub["category"])] or list(AIE_CATEGORIES[:-1])
        labels[i] = _row_labels(sub, cats)
        for kind in KINDS:
            raws[(i, kind)] = _raw_matrix(sub[sub["kind"] == kind], layers).reindex(index=cats)
    return raws, labels


def kind_limits(aie_df: pd.DataFrame, rows: Sequence[Sequence] | None = None,
                signed: bool = False) -> dict[str, tuple[float, float]]:
    """The colour limits of each kind (column) over ``rows`` of ``aie_df`` (every (model, modality, fact set) in
    it when None): log10 AIE floored at 1e-4, or (signed) symmetric around 0. Figure 2 and the per-model figures
    use the same limits when given the same AIE tables, so that one colour means one AIE everywhere."""
    aie_df = with_fact_set(aie_df)
    if rows is None:
        rows = [Row(m, mod, fs, "") for (m, mod, fs), _ in aie_df.groupby(["model", "modality", "fact_set"],
                                                                          sort=True)]
    rows = figure_rows(aie_df, rows)
    raws, _ = _matrices(aie_df, rows)
    out = {}
    for kind in KINDS:
        allv = np.concatenate([raws[(i, kind)].to_numpy().ravel() for i in range(len(rows))] or [np.array([])])
        if signed:
            finite = allv[np.isfinite(allv)]
            m = float(np.abs(finite).max()) if finite.size else 1.0
            out[kind] = (-m, m)
        else:
            out[kind] = _finite_range(log_aie(allv))
    return out


def panel_title(aie_df: pd.DataFrame, model: str, modality: str, kind: str, label: str) -> str:
    """A panel's title: the row's label and the kind; for mlp and attn the window of the traces, as ``window W of
    L layers`` (W from the AIE table's ``window``, L its layers), when the table records it."""
    title = f"{label}: {KIND_LABEL[kind]}"
    if kind == "hidden" or "window" not in aie_df.columns:
        return title
    sub = aie_df[(aie_df["model"] == model) & (aie_df["modality"] == modality)]
    windows = sub.loc[sub["kind"] == kind, "window"].dropna()
    if windows.empty or sub["layer"].dropna().empty:
        return title
    return f"{title} ({window_caption(int(windows.max()), int(sub['layer'].max()) + 1)})"


@dataclass
class Grid:
    """A drawn grid: the paths written, the cell counts per (row, kind), each panel's colour limits
    {(row index, kind): (vmin, vmax)} as drawn (log10 AIE, or signed AIE) and each panel's title."""
    paths: list[Path]
    cells: pd.DataFrame
    norms: dict[tuple[int, str], tuple[float, float]]
    titles: dict[tuple[int, str], str]


def draw_grid(aie_df: pd.DataFrame, rows: Sequence[Sequence], out, signed: bool = False,
              scale_df: pd.DataFrame | None = None, scale_note: str = "", untraced: Untraced | None = None) -> Grid:
    """Rows (model, modality, label), each split by fact set (:func:`figure_rows`), x columns (kinds) of AIE
    heatmaps, written to ``out`` (.png and .pdf). One colour scale per column, shared down the rows; over every
    (model, modality, fact set) of ``scale_df`` when given (the per-model figures pass all the AIE tables, to
    share Figure 2's scale). ``cells`` has one line per drawn row and kind: model, modality, fact_set, row (its
    label), kind and the cell counts. ``untraced`` (:func:`~factrace.analysis.rows.untraced_sets`): the fact sets
    without a traced fact, each drawn as an empty row with n = 0 and its reason."""
    if not rows:
        raise ValueError("a heatmap grid needs at least one row")
    aie_df = with_fact_set(aie_df)
    rows = figure_rows(aie_df, rows, untraced)
    raws, labels = _matrices(aie_df, rows)
    stats = []
    for i, r in enumerate(rows):
        for kind in KINDS:
            c = count_cells(raws[(i, kind)].to_numpy())
            stats.append({"model": r.model, "modality": r.modality, "fact_set": r.fact_set, "row": r.label,
                          "kind": kind, **asdict(c)})
    total = CellCounts(*(sum(s[k] for s in stats) for k in ("cells", "negative", "floored")))
    lims = kind_limits(aie_df, rows, signed) if scale_df is None else kind_limits(scale_df, None, signed)
    fig, axes = plt.subplots(len(rows), 3, figsize=(15, 0.25 * sum(len(v) for v in labels.values()) + 1.6 * len(rows)),
                             squeeze=False)
    norms, titles = {}, {}
    for j, kind in enumerate(KINDS):
        for i, r in enumerate(rows):
            # the category labels go on the row's first panel that has data
            first = next((k for k in KINDS if np.isfinite(raws[(i, k)].to_numpy(dtype=float)).any()), KINDS[0])
            titles[(i, kind)] = panel_title(aie_df, r.model, r.modality, kind, r.label)
            lim = _panel(axes[i, j], raws[(i, kind)], labels[i], kind, titles[(i, kind)], kind == first,
                         signed, lims[kind], r.note)
            if lim is not None:
                norms[(i, kind)] = lim
    note = _footnote(total, signed)
    if scale_note:
        note += "\n" + scale_note
    fig.suptitle(note, fontsize=9, y=0.0, va="top")
    fig.tight_layout()
    return Grid(save_figure(fig, out), pd.DataFrame(stats), norms, titles)


def _grid(aie_df: pd.DataFrame, rows: Sequence[Sequence], out, signed: bool,
          untraced: Untraced | None = None) -> tuple[list[Path], pd.DataFrame]:
    g = draw_grid(aie_df, rows, out, signed, untraced=untraced)
    return g.paths, g.cells


def figure2_grid(aie_df: pd.DataFrame, rows: Sequence[Sequence],
                 out: str | os.PathLike[str], untraced: Untraced | None = None) -> list[Path]:
    """The paper's Figure 2: one row per (model, modality, label), split by fact set (a speech LM's S->T row:
    facts heard in speech, facts learnt in text only; a set of ``untraced`` drawn empty with n = 0 and its
    reason), columns hidden / MLP / attention; log AIE over layer x category, colour scale shared down each
    column, n per category, negative cells hatched."""
    return figure2_with_counts(aie_df, rows, out, untraced)[0]


def figure2_with_counts(aie_df: pd.DataFrame, rows: Sequence[Sequence],
                        out: str | os.PathLike[str], untraced: Untraced | None = None) -> tuple[list[Path], pd.DataFrame]:
    """:func:`figure2_grid` and its cell counts per (row, kind): columns model, modality, fact_set, row, kind,
    cells, negative, floored."""
    return _grid(aie_df, rows, out, signed=False, untraced=untraced)


def figure2_signed(aie_df: pd.DataFrame, rows: Sequence[Sequence],
                   out: str | os.PathLike[str], untraced: Untraced | None = None) -> list[Path]:
    """Figure 2 on the signed AIE (diverging map, symmetric log): negative cells in blue."""
    return _grid(aie_df, rows, out, signed=True, untraced=untraced)[0]


def aie_heatmaps(aie_df: pd.DataFrame, out_prefix: str | os.PathLike[str], labels: dict[str, str] | None = None,
                 scale_df: pd.DataFrame | None = None,
                 untraced: Untraced | None = None) -> dict[tuple[str, str], list[Path]]:
    """One figure per (model, modality): hidden / MLP / attention heatmaps of log AIE (layer x category), one
    row per fact set (:func:`figure_rows`: two S->T rows for a speech LM that records which facts it heard).

    Written to ``<out_prefix>_<model>_<modality>.{png,pdf}`` (model slugged); returns
    {(model, modality): [png, pdf]}. n per category on the rows, negative cells hatched. Panels are titled
    with the model's label (``labels``: model -> ``models.<m>.label``; the model's name without one). Each
    kind's colour scale spans ``scale_df`` (all the AIE tables: Figure 2's scale) when given, else ``aie_df``
    (every model and modality drawn), never one panel alone. ``untraced``: the fact sets without a traced fact,
    drawn as empty rows with n = 0 and the reason, as in Figure 2.
    """
    out: dict[tuple[str, str], list[Path]] = {}
    prefix = figure_stem(out_prefix)
    labels = labels or {}
    scale = aie_df if scale_df is None else scale_df
    pairs = scale.groupby(["model", "modality"]).ngroups
    n_rows = with_fact_set(scale).groupby(["model", "modality", "fact_set"]).ngroups
    note = "" if n_rows < 2 else (f"the colour scale of each kind spans {pairs} models x modalities, as in Figure 2"
                                  if n_rows == pairs else f"the colour scale of each kind spans the {n_rows} rows "
                                  "of Figure 2 (models x modalities x fact sets)")
    for (model, modality), _sub in aie_df.groupby(["model", "modality"], sort=True):
        label = f"{labels.get(str(model), model)} {MODALITY_LABEL.get(modality, modality)}"
        path = prefix.with_name(f"{prefix.name}_{slug(model)}_{slug(modality)}")
        out[(str(model), str(modality))] = draw_grid(aie_df, [(model, modality, label)], path, signed=False,
                                                     scale_df=scale, scale_note=note, untraced=untraced).paths
    return out
