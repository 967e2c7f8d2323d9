"""Figures a training run records: learning curves, predicted vs true, crops with predictions.

Every function draws on a `matplotlib.figure.Figure` (no pyplot, no global
backend), writes one PNG and returns its path, so it is safe in worker threads
and headless machines. Figures are at most `MAX_WIDTH_PX` wide, the width of
MLflow's artifact preview: panels wrap onto rows rather than shrink, and
labels wrap between words rather than being cut.

```python
training_curves({"loss": [(0, 0.09), (1, 0.07)], "val_loss": [(0, 0.08), (1, 0.07)]}, "curves.png")
predicted_vs_true(y_true, y_pred, "t01", "t01.png")
crop_gallery(crops, y_true, y_pred, asset_ids, "crops.png")
```
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from galaxyzoo import schema

History = dict[str, list[tuple[int, float]]]

DPI = 100
MAX_WIDTH_PX = 1320
"""Widest figure written, in pixels at `DPI`: what MLflow's artifact preview shows unscaled."""


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _panels(n: int, panel_width: float, panel_height: float, max_columns: int | None = None):
    """A figure with `n` panels in rows no wider than `MAX_WIDTH_PX`, and its axes (spare cells hidden).

    Rows are balanced (7 panels of at most 4 a row: 4 + 3, 6: 3 + 3), so no
    row is left with a lone panel.
    """
    fit = max(1, MAX_WIDTH_PX // round(panel_width * DPI))  # whole pixels: 13.2 // 3.3 is 3.0 in floats
    columns = max(1, min(n, fit, max_columns or fit))
    rows = max(1, -(-n // columns))
    columns = -(-n // rows)
    fig = _figure(panel_width * columns, panel_height * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n], columns


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def best_epoch(history: History) -> int | None:
    """The epoch with the lowest `val_loss` (or `loss` without validation), as the seed marked it."""
    series = history.get("val_loss") or history.get("loss")
    if not series:
        return None
    return min(series, key=lambda point: point[1])[0]


def training_curves(history: History, path: str | Path, title: str | None = None) -> Path:
    """The seed's `model_training.png`: R^2 and loss per epoch, train and validation.

    `history` maps metric names (`loss`, `val_loss`, `r2_flat`, `val_r2_flat`,
    and optionally `rmse`, `val_rmse`, `lr`) to `(epoch, value)` pairs; each
    line's legend label is its metric key, as MLflow shows it. The learning
    rate is on a log axis (it moves by factors). A dashed line marks the best
    epoch (`best_epoch`).
    """
    from matplotlib.ticker import MaxNLocator

    panels = [("r2_flat", "R² (flat)"), ("loss", "Loss"), ("rmse", "RMSE"), ("lr", "Learning rate")]
    panels = [(key, label) for key, label in panels if key in history]
    fig, axes, _ = _panels(len(panels), 6.5, 4.5, max_columns=2)
    marked = best_epoch(history)
    epochs = [step for series in history.values() for step, _ in series]
    for ax, (key, label) in zip(axes, panels):
        for name, colour in ((key, "tab:blue"), (f"val_{key}", "tab:orange")):
            if name in history:
                steps, values = zip(*history[name])
                # Markers, so a one-epoch run shows its points (a one-point line draws nothing).
                ax.plot(steps, values, color=colour, marker="o", markersize=3, label=name)
        if marked is not None:
            ax.axvline(marked, color="green", linestyle="--", linewidth=1, label=f"best epoch {marked}")
        if key == "lr":
            ax.set_yscale("log")
        if epochs and min(epochs) == max(epochs):
            # One epoch: otherwise the axis spans ±0.05 and the integer locator falls back to fractions.
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
        ax.set_title(label)
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, wrap=True)
    return _save(fig, path)


def predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray, question_id: str, path: str | Path,
                      max_points: int = 20000, seed: int = 0) -> Path:
    """One panel per answer of `question_id`: predicted against true fraction, with RMSE.

    At most `max_points` galaxies are drawn (a fixed random subset), so the
    figure stays small for a 60k-galaxy test set. Panels wrap onto rows (t08's
    seven answers: 4 + 3).
    """
    question = schema.QUESTION_BY_ID[question_id]
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) > max_points:
        keep = np.random.default_rng(seed).choice(len(y_true), max_points, replace=False)
        y_true, y_pred = y_true[keep], y_pred[keep]
    answers = question.answers
    fig, axes, columns = _panels(len(answers), 3.2, 3.4)
    for i, (ax, answer) in enumerate(zip(axes, answers)):
        t, p = y_true[:, answer.index], y_pred[:, answer.index]
        rmse = float(np.sqrt(np.mean(np.square(t - p)))) if len(t) else float("nan")
        ax.scatter(t, p, s=4, alpha=0.3 if len(t) > 2000 else 0.6, linewidths=0)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"a{answer.number:02d} {answer.slug}\nRMSE {rmse:.3f}", fontsize=9)
        ax.set_xlabel("true fraction")
        if i % columns == 0:
            ax.set_ylabel("predicted fraction")
    fig.suptitle(f"{question.id} {question.slug}: {question.text}", fontsize=10, wrap=True)
    return _save(fig, path)


def crop_gallery(crops: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, asset_ids, path: str | Path,
                 columns: int = 4) -> Path:
    """Crops with their predicted (and true) answers to the first question and the likeliest path.

    `crops` are uint8 `(n, H, W, C)` as stored; each panel is titled with the
    asset id, t01's three fractions as `pred (true)` under their full answer
    names, and the predicted most likely answer path through the tree, wrapped
    between steps.
    """
    n = len(crops)
    fig, axes, _ = _panels(max(n, 1), 3.3, 4.3, max_columns=columns)
    t01 = schema.QUESTION_BY_ID["t01"]
    paths = schema.most_likely_path(np.asarray(y_pred)) if n else []
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        image = crops[i]
        # Stores keep colour as BGR (OpenCV's order); matplotlib wants RGB.
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image[..., ::-1], cmap="gray", vmin=0, vmax=255)
        fractions = "\n".join(f"{a.slug} {y_pred[i, a.index]:.2f} ({y_true[i, a.index]:.2f})" for a in t01.answers)
        steps = " > ".join(
            f"{schema.ANSWER_BY_STEM[stem].question_id}:{schema.ANSWER_BY_STEM[stem].slug}" for stem in paths[i]
        )
        # 48 characters of 7 pt text fit a 3.3 in panel with room to spare; steps hold no spaces, so
        # lines break only between them.
        path_text = textwrap.fill(steps, 48, break_long_words=False, break_on_hyphens=False)
        ax.set_title(f"{asset_ids[i]}\n{fractions}\n{path_text}", fontsize=7)
    fig.suptitle("test crops: predicted (true)", fontsize=10)
    return _save(fig, path)
