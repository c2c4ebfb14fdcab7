"""Which traced facts a speech LM heard with their answer, read from its checkpoint (:func:`fact_sets`).

The offline speech LM's checkpoint directory holds ``facts.parquet``: every fact it was trained on, by
``known_id`` and its ``set`` (``traced``, or the ``extra`` facts it also learnt), with the column ``speech_set``:
``heard`` (the fact's speech, with its answer, was in stage-2 training), ``text_only`` (learnt by the backbone in
text, never heard with its answer) or ``never_heard`` (no speech at all: extra facts only). Only the traced
facts' sets are read. An S->T trace of such a model records each fact's set in the trace table's ``fact_set``
column, and the analysis splits that model's S->T row of Figure 2 by it. Every other trace (T->T, or a model
whose checkpoint has no such file or column: a text backbone, SmolLM2, SpiritLM) has one set, :data:`ALL`.
"""

from __future__ import annotations

from pathlib import Path

#: a fact of a trace without a split (T->T, or a model without ``speech_set``)
ALL = "all"
#: the traced fact's speech (prompt and answer) was in the speech LM's stage-2 training
HEARD = "heard"
#: the traced fact was learnt in text only (by the backbone): never heard with its answer
TEXT_ONLY = "text_only"
#: every value of a trace table's ``fact_set``, in the order rows are shown
FACT_SETS = (ALL, HEARD, TEXT_ONLY)
#: the values of the checkpoint's ``speech_set`` column
SPEECH_SETS = (HEARD, TEXT_ONLY, "never_heard")
#: how figures and tables name a set (Figure 2's row labels)
FACT_SET_WORDS = {ALL: "all facts", HEARD: "facts heard in speech", TEXT_ONLY: "facts learnt in text only"}

FACTS_FILE = "facts.parquet"
#: the ``set`` of the facts the workflow traces (the others, ``extra``, are trained on only)
TRACED = "traced"
COLUMN = "speech_set"


def fact_sets(model_dir: str | Path) -> dict[int, str]:
    """``known_id`` -> ``heard`` | ``text_only`` of the traced facts of the speech LM in ``model_dir``.

    Empty when the checkpoint has no ``facts.parquet`` or the file has no ``speech_set`` column (no split).
    Rows whose ``set`` is not ``traced`` (the extra facts; every row counts where there is no ``set`` column) and
    rows ``never_heard`` are left out; a value outside :data:`SPEECH_SETS` is an error that names the file."""
    path = Path(model_dir) / FACTS_FILE
    if not path.is_file():
        return {}
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    if COLUMN not in names:
        return {}
    df = pq.read_table(path, columns=["known_id", COLUMN, *(["set"] if "set" in names else [])]).to_pandas()
    values = df[COLUMN].astype("string")
    bad = df.loc[~values.isin(SPEECH_SETS).fillna(False).astype(bool)]
    if len(bad):
        row = bad.iloc[0]
        raise ValueError(f"{path}: known_id {row['known_id']} has {COLUMN} {row[COLUMN]!r}; expected one of "
                         f"{', '.join(SPEECH_SETS)} (rebuild the speech LM)")
    keep = values.isin((HEARD, TEXT_ONLY)).to_numpy(dtype=bool)
    if "set" in df.columns:
        keep = keep & (df["set"].astype("string") == TRACED).fillna(False).to_numpy(dtype=bool)
    return {int(k): str(v) for k, v in zip(df.loc[keep, "known_id"], values[keep], strict=True)}
