"""The run's figures read right in MLflow's artifact preview: width, wrapping, labels, axes."""

import numpy as np
import pytest
from PIL import Image

from galaxyzoo import schema
from galaxyzoo.tracking import plots

WIDEST = max(schema.QUESTIONS, key=lambda q: len(q.answers))


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions save, kept so a test can inspect their artists."""
    figures = []
    save = plots._save

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def fractions(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, len(schema.ANSWERS)))


def history(epochs: int) -> dict:
    rng = np.random.default_rng(1)
    keys = ("loss", "val_loss", "r2_flat", "val_r2_flat", "rmse", "val_rmse")
    curves = {key: [(e, float(v)) for e, v in enumerate(rng.random(epochs))] for key in keys}
    curves["lr"] = [(e, 1e-3 * 0.5 ** e) for e in range(epochs)]
    return curves


def assert_fits(fig):
    """Everything drawn lies inside the figure, and no two panel titles overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figure has no canvas of its own (no pyplot)
    canvas.draw()
    renderer = canvas.get_renderer()
    drawn_box, page = fig.get_tightbbox(renderer), fig.bbox_inches
    assert drawn_box.x0 >= -0.01 and drawn_box.y0 >= -0.01, (drawn_box, page)
    assert drawn_box.x1 <= page.x1 + 0.01 and drawn_box.y1 <= page.y1 + 0.01, (drawn_box, page)
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_visible() and ax.get_title()]
    for i, a in enumerate(titles):
        for b in titles[i + 1:]:
            assert not a.overlaps(b), (a, b)


def test_widest_question_wraps_onto_rows_within_the_preview_width(tmp_path, drawn):
    y_true, y_pred = fractions(50), fractions(50, seed=1)
    path = plots.predicted_vs_true(y_true, y_pred, WIDEST.id, tmp_path / "widest.png")
    assert Image.open(path).width <= plots.MAX_WIDTH_PX
    panels = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert len(panels) == len(WIDEST.answers)
    assert len({round(ax.get_position().y0, 3) for ax in panels}) > 1  # more than one row


# The widest question, the longest question text for its figure's width, and a question of two even rows.
TIGHTEST = max(schema.QUESTIONS, key=lambda q: len(q.text) / len(q.answers))


@pytest.mark.parametrize("question", sorted({WIDEST.id, TIGHTEST.id, "t11"}))
def test_question_figures_fit_and_name_their_answers(tmp_path, drawn, question):
    y_true, y_pred = fractions(30), fractions(30, seed=1)
    path = plots.predicted_vs_true(y_true, y_pred, question, tmp_path / f"{question}.png")
    assert Image.open(path).width <= plots.MAX_WIDTH_PX
    titles = " ".join(ax.get_title() for ax in drawn[0].axes if ax.get_visible())
    assert all(answer.slug in titles for answer in schema.QUESTION_BY_ID[question].answers)
    assert_fits(drawn[0])


def longest_path_row() -> np.ndarray:
    """Fractions whose likeliest path is the longest the tree allows, with its longest answer names."""
    picks = {"t01": "features_or_disk", "t02": "no", "t03": "no_bar", "t04": "spiral", "t05": "just_noticeable",
             "t06": "yes", "t07": "completely_round", "t08": "lens_or_arc", "t09": "no_bulge", "t10": "medium",
             "t11": "more_than_4"}
    row = np.zeros(len(schema.ANSWERS))
    for question in schema.QUESTIONS:
        row[next(a.index for a in question.answers if a.slug == picks[question.id])] = 1.0
    return row


def test_crop_titles_keep_full_answer_names_and_the_whole_path(tmp_path, drawn):
    n = 6
    crops = np.random.default_rng(0).integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    y_pred = np.tile(longest_path_row(), (n, 1))
    ids = [str(587732591714893851 + i) for i in range(n)]
    path = plots.crop_gallery(crops, fractions(n), y_pred, ids, tmp_path / "crops.png")
    assert Image.open(path).width <= plots.MAX_WIDTH_PX
    fig = drawn[0]
    steps = [f"{schema.ANSWER_BY_STEM[s].question_id}:{schema.ANSWER_BY_STEM[s].slug}"
             for s in schema.most_likely_path(y_pred[:1])[0]]
    assert len(steps) == 9
    for ax, asset_id in zip(fig.axes, ids):
        title = ax.get_title()
        assert asset_id in title
        assert all(f"{a.slug} " in title for a in schema.QUESTION_BY_ID["t01"].answers), title
        # Lines break only between steps, so every step reads whole.
        assert all(step in title for step in steps), title
    assert_fits(fig)


def test_training_curves_legends_are_metric_keys_and_lr_is_log(tmp_path, drawn):
    curves = history(4)
    plots.training_curves(curves, tmp_path / "curves.png", title="tiny (abcdef12)")
    fig = drawn[0]
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert len(panels) == 4
    for title, key in (("R² (flat)", "r2_flat"), ("Loss", "loss"), ("RMSE", "rmse")):
        labels = [text.get_text() for text in panels[title].get_legend().get_texts()]
        assert labels == [key, f"val_{key}", f"best epoch {plots.best_epoch(curves)}"]
    lr = panels["Learning rate"]
    assert lr.get_yscale() == "log"
    assert [text.get_text() for text in lr.get_legend().get_texts()][0] == "lr"
    assert Image.open(tmp_path / "curves.png").width <= plots.MAX_WIDTH_PX
    assert_fits(fig)


def test_one_epoch_curves_show_points_on_whole_epochs_and_no_empty_panel(tmp_path, drawn):
    curves = {key: series for key, series in history(1).items() if "rmse" not in key}
    plots.training_curves(curves, tmp_path / "curves.png")
    panels = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert len(panels) == 3  # r2, loss, lr: the grid's fourth cell is not drawn
    for ax in panels:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert all(line.get_marker() not in (None, "", "None") for line in ax.get_lines()[:1])
