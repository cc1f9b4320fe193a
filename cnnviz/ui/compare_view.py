"""Streamlit pieces of the Compare page: filters, the runs table, run pickers, charts, galleries.

The page calls these in order; the numbers come from ``cnnviz.compare`` (pure)
and the run store. Every widget has a ``key`` starting with ``compare_`` so tests
and the browser walk can find it.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
import streamlit as st

from cnnviz import charts, compare
from cnnviz.data import get_dataset_spec, load_validation
from cnnviz.runs import RunNotFound, RunStore
from cnnviz.training.config import TrainConfig
from cnnviz.ui.student import current_student

GALLERY_MAX = 36  # images per gallery page: enough to see a pattern, few enough to load fast
GALLERY_IMAGE = 120  # px per gallery picture: a row wraps to the screen's width


# -- the table ----------------------------------------------------------------------

TABLE_CONFIG = {
    "id": st.column_config.NumberColumn("id", format="%d", width="small"),
    "best val acc": st.column_config.TextColumn("best val acc", help="Best validation accuracy over the epochs"),
    "time (s)": st.column_config.TextColumn("time (s)", help="Training wall time in seconds"),
    "params": st.column_config.TextColumn("params", help="Parameters"),
    "trainable params": st.column_config.TextColumn("trainable params", help="Parameters that training updated "
                                                    "(fewer than all of them when a backbone was frozen)"),
    "FLOPs": st.column_config.TextColumn("FLOPs", help="Floating-point operations for one image"),
    "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    "note": st.column_config.TextColumn("note", help="Why a run has no numbers"),
}
MISSING = "—"  # a value never measured (a run that failed before training), never a misleading 0


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The runs table as shown: one percent format, compact counts, a dash for what was never measured."""
    from cnnviz.inspect import format_count, format_flops

    shown = table.copy()
    formats = {"best val acc": lambda v: f"{v:{charts.PERCENT}}", "time (s)": lambda v: f"{v:.1f}",
               "params": format_count, "trainable params": format_count, "FLOPs": format_flops}
    for column, fmt in formats.items():
        shown[column] = [MISSING if pd.isna(v) else fmt(v) for v in table[column]]
    return shown


def load_table(store: RunStore, runs: Sequence[Any]) -> pd.DataFrame:
    """The runs table, with the epochs each run actually completed."""
    done = {run.id: len(store.epochs(run.id)) for run in runs}
    return compare.runs_table(runs=runs, epochs_done=done)


def filtered_table(table: pd.DataFrame) -> pd.DataFrame:
    """Draw the filters, the table and its CSV export; return the rows the filters keep."""
    choices = compare.filter_choices(table)
    search = st.text_input("Search", key="compare_search", placeholder="words in name, architecture, options, dataset... or #id")
    picked = {}
    with st.container(horizontal=True):  # four filters in a row that wraps on a narrow screen
        for arg, column in (("architectures", "architecture"), ("datasets", "dataset"), ("modes", "mode"),
                            ("statuses", "status")):
            picked[arg] = st.multiselect(column, choices[column], key=f"compare_filter_{column}", placeholder="all",
                                         width=200)
    shown = compare.filter_runs(table, text=search, **picked)
    st.dataframe(display_table(shown), key="compare_table", hide_index=True, column_config=TABLE_CONFIG,
                 width="stretch")
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(f"{len(shown)} of {len(table)} runs shown.")
        st.download_button("CSV", compare.table_csv(shown), file_name="cnnviz-runs.csv", help="Export the table as CSV",
                           mime="text/csv", key="compare_export_csv", icon=":material/download:")
    ids = [int(i) for i in shown["id"].head(REPORT_RUNS)] if "id" in shown.columns else []
    if ids:
        st.download_button(f"Lab report of {len(ids)} run(s)", data=lambda: _runs_report_html(ids),
                           file_name="cnnviz-runs-report.html", mime="text/html", key="compare_report",
                           icon=":material/description:", help="One self-contained HTML page (charts embedded)")
    return shown


REPORT_RUNS = 10  # runs in one compared report at most: each brings its model, tables and pictures


def _runs_report_html(ids: list[int]) -> str:
    from cnnviz.reports import render, runs_report

    return render(runs_report(RunStore(), ids), "html")


def _pick_shown(ids: list[int]) -> None:
    st.session_state["compare_runs"] = ids


def pick_runs(table: pd.DataFrame, shown: pd.DataFrame) -> list[int]:
    """The multiselect of runs to compare (key ``compare_runs``); defaults to the newest finished runs of one dataset."""
    labels = {int(row.id): f"#{row.id} {row.name}{compare.whose(row.student)} ({row.dataset})"
              for row in table.itertuples()}
    if "compare_runs" not in st.session_state:
        st.session_state["compare_runs"] = compare.default_selection(table, student=current_student())
    # Runs deleted since the last rerun must leave the selection before the widget sees it.
    st.session_state["compare_runs"] = [i for i in st.session_state["compare_runs"] if i in labels]
    chosen = st.multiselect("Runs to compare", list(labels), format_func=labels.get, key="compare_runs",
                            placeholder="choose runs from the table")
    shown_ids = [int(i) for i in shown["id"]]
    st.button(f"All {len(shown_ids)} shown", key="compare_pick_shown", on_click=_pick_shown, args=(shown_ids,),
              disabled=not shown_ids, help="Compare every run the table shows (after its filters)")
    return chosen


# -- the charts ---------------------------------------------------------------------------

def curves_section(store: RunStore, runs: Sequence[Any]) -> None:
    """Accuracy and loss curves of the chosen runs, overlaid, by epoch or by wall time."""
    frame = compare.epochs_frame(epochs_by_run={compare.run_label(r): store.epochs(r.id) for r in runs})
    if frame.empty:
        st.info("None of these runs has finished an epoch yet.")
        return
    axis = st.radio("Draw against", list(compare.CURVE_AXES), key="compare_curve_x", horizontal=True,
                    help="Wall time shows what an accuracy costs: a slow model may win per epoch and lose per minute.")
    x = compare.CURVE_AXES[axis]
    chance = compare.common_chance(runs)
    left, right = st.columns(2)
    with left:
        st.markdown("**Accuracy** (solid: training, dashed: validation)")
        st.altair_chart(charts.curves(frame, metric="acc", x=x, chance=chance), width="stretch")
    with right:
        st.markdown("**Loss**")
        st.altair_chart(charts.curves(frame, metric="loss", x=x), width="stretch")


def cost_section(table: pd.DataFrame, runs: Sequence[Any] = ()) -> None:
    """Best validation accuracy against training time, trainable parameters or FLOPs."""
    frame = compare.cost_frame(table)
    if frame.empty:
        st.info("None of these runs has a validation accuracy yet.")
        return
    cost = st.radio("Cost", list(compare.COST_AXES), key="compare_cost_axis", horizontal=True)
    st.altair_chart(charts.cost_scatter(frame, cost=compare.COST_AXES[cost], chance=compare.common_chance(runs)),
                    width="stretch")
    st.caption("Up and to the left is better: more accuracy for less. Parameters count what training updated "
               "(a frozen backbone's weights are not counted); parameters and FLOPs use a log scale.")
    missing = table[table["best val acc"].isna()]
    if not missing.empty:
        st.caption("Not drawn: " + ", ".join(f"#{row.id} ({row.note or 'no validation accuracy yet'})"
                                             for row in missing.itertuples()))


def confusion_section(runs: Sequence[Any]) -> None:
    """The chosen runs' confusion matrices side by side (rows: true class, columns: predicted)."""
    with_matrix = [r for r in runs if r.confusion and r.classes]
    if not with_matrix:
        st.info("None of these runs has a confusion matrix yet (it is saved when a run ends).")
        return
    # Each matrix keeps its own square size; the row wraps when the screen is narrow.
    with st.container(horizontal=True, gap="large"):
        for run in with_matrix:
            with st.container(width="content"):
                acc = f" · best val {run.best_val_acc:{charts.PERCENT}}" if run.best_val_acc is not None else ""
                st.markdown(f"**{compare.run_label(run)}**{acc}")
                st.altair_chart(charts.confusion(charts.confusion_frame(run.confusion, run.classes)), width="content")
    missing = [compare.run_label(r) for r in runs if r not in with_matrix]
    if missing:
        st.caption(f"No confusion matrix yet for {', '.join(missing)}.")


@st.cache_resource(max_entries=2, show_spinner="Loading the validation images...")
def _validation_images(config_json: str, image_size: int):
    """The validation split of a run's config at ``image_size`` (shared read-only across sessions).

    The pictures ``cnnviz.data.load_splits`` validates on, without decoding the (much larger)
    training split the gallery does not show.
    """
    return load_validation(TrainConfig.from_json(config_json), image_size=image_size)


def _display_size(config: Any) -> int:
    """A gallery size: the dataset's own size when small, else 128 px (enough to see, quick to decode)."""
    native = get_dataset_spec(config.dataset).native_size
    return int(native) if native and native <= 128 else 128


def disagreement_section(runs: Sequence[Any]) -> None:
    """Pick runs A and B; show how often each is right and the validation images where they disagree."""
    if len(runs) < 2:
        st.info("Choose at least two runs above to see where they disagree.")
        return
    labels = {r.id: compare.run_label(r) for r in runs}
    by_id = {r.id: r for r in runs}
    first, second = compare.first_comparable_pair(runs)
    left, right = st.columns(2)
    a = left.selectbox("Run A", list(labels), format_func=labels.get, index=first, key="compare_disagree_a")
    b = right.selectbox("Run B", list(labels), format_func=labels.get, index=second, key="compare_disagree_b")
    if a == b:
        st.info("Choose two different runs.")
        return
    run_a, run_b = by_id[a], by_id[b]
    ok, reason = compare.same_validation_set(run_a, run_b)
    if not ok:
        st.warning(f"These two runs cannot be compared image by image: {reason}", icon=":material/block:")
        st.caption("Two runs can be compared image by image when they validated on the same pictures: same dataset, "
                   "labels, validation split and seed (the architecture, mode and image size may differ).")
        return
    try:
        val = _validation_images(run_a.config.to_json(), _display_size(run_a.config))
    except Exception as exc:  # a dataset that went missing since training: say so, keep the page
        st.warning(f"Could not load the validation images of {run_a.config.dataset}: {exc}")
        return
    truth = val.labels.tolist()
    if len(truth) != len(run_a.val_predictions):
        st.warning(f"The validation set now has {len(truth)} images but the runs saw {len(run_a.val_predictions)}; "
                   "the dataset changed since they were trained.")
        return
    _agreement_metrics(compare.agreement_counts(pred_a=run_a.val_predictions, pred_b=run_b.val_predictions, truth=truth))
    frame = compare.disagreement_frame(pred_a=run_a.val_predictions, pred_b=run_b.val_predictions, truth=truth,
                                       classes=run_a.classes)
    if frame.empty:
        st.success("They agree on every validation image.")
        return
    kind = st.radio("Show", ["all", *compare.DISAGREEMENT_KINDS], key="compare_disagree_kind", horizontal=True)
    if kind != "all":
        frame = frame[frame["kind"] == kind]
    gallery(val.images, frame, note=f"A = {labels[a]}, B = {labels[b]}")


def _agreement_metrics(counts: dict[str, int]) -> None:
    with st.container(horizontal=True):  # five metrics that wrap rather than cut their labels
        for name, count in counts.items():
            st.metric(name, count, width=150)


def gallery(images, frame: pd.DataFrame, *, note: str) -> None:
    """A grid of the images in ``frame["index"]`` captioned with the true class and both answers."""
    if frame.empty:
        st.info("No image in this group.")
        return
    st.caption(f"{len(frame)} images; showing {min(len(frame), GALLERY_MAX)}. {note}")
    rows = list(frame.head(GALLERY_MAX).itertuples(index=False))
    with st.container(horizontal=True):
        for row in rows:
            index, true, said_a, said_b = row[:4]
            mark_a, mark_b = ("✓" if said == true else "✗" for said in (said_a, said_b))
            st.image(images[index].permute(1, 2, 0).numpy(), width=GALLERY_IMAGE,
                     caption=f"true {true} · A: {said_a} {mark_a} · B: {said_b} {mark_b}")


# -- rename and delete ------------------------------------------------------------------

def _rename(store: RunStore) -> None:
    run_id, name = st.session_state["compare_manage_run"], st.session_state["compare_rename_text"].strip()
    if not name:
        st.session_state["compare_notice"] = ("warning", "Type a new name first.")
        return
    try:
        if not _yours(store, run_id):
            st.session_state["compare_notice"] = ("warning", f"Run #{run_id} is another student's: not renamed.")
            return
        store.rename(run_id, name)
    except RunNotFound:
        st.session_state["compare_notice"] = ("warning", f"Run #{run_id} no longer exists.")
        return
    st.session_state["compare_rename_text"] = ""
    st.session_state["compare_notice"] = ("success", f"Run #{run_id} is now called “{name}”.")


def _delete(store: RunStore) -> None:
    run_id = st.session_state["compare_manage_run"]
    st.session_state["compare_delete_confirm"] = False
    try:
        if not _yours(store, run_id):
            st.session_state["compare_notice"] = ("warning", f"Run #{run_id} is another student's: not deleted.")
            return
        store.delete(run_id)
    except (ValueError, RunNotFound) as exc:
        st.session_state["compare_notice"] = ("warning", f"Run #{run_id} was not deleted: {exc}")
        return
    st.session_state["compare_runs"] = [i for i in st.session_state.get("compare_runs", []) if i != run_id]
    st.session_state["compare_notice"] = ("success", f"Deleted run #{run_id} and its checkpoint.")


def _managed_students() -> tuple[str, str]:
    """Whose runs the current student may rename or delete: their own, and runs of nobody."""
    return "", current_student()


def _yours(store: RunStore, run_id: int) -> bool:
    """Whether the current student may rename or delete run ``run_id`` (checked again on the click)."""
    return store.get(run_id).student in _managed_students()


def manage_section(store: RunStore, table: pd.DataFrame) -> None:
    """Rename one of your runs, or delete it (with its checkpoint) after ticking a confirmation.

    A student manages only their own runs (and runs that belong to nobody); the Teacher page
    cancels and cleans up anyone's.
    """
    notice = st.session_state.pop("compare_notice", None)
    if notice:
        getattr(st, notice[0])(notice[1])
    mine = table[table["student"].isin(_managed_students())]
    if mine.empty:
        st.caption(f"You ({current_student()}) have no runs to rename or delete here; other students' runs are "
                   "theirs, and the Teacher page cancels and cleans up anyone's.")
        return
    labels = {int(row.id): f"#{row.id} {row.name}{compare.whose(row.student)} ({row.status})"
              for row in mine.itertuples()}
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="compare_manage_run",
                          help="Your own runs; the Teacher page manages everyone's.")
    left, right = st.columns(2)
    with left:
        st.text_input("New name", key="compare_rename_text", max_chars=80)
        st.button("Rename", key="compare_rename", on_click=_rename, args=(store,), icon=":material/edit:")
    with right:
        sure = st.checkbox(f"Yes, delete run #{run_id}, its curves and its checkpoint", key="compare_delete_confirm")
        st.button("Delete", key="compare_delete", on_click=_delete, args=(store,), disabled=not sure,
                  type="primary", icon=":material/delete:")
