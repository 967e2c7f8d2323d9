"""Figures a training run records: learning curves, predicted vs true, crops with predictions.

Every function draws on a `matplotlib.figure.Figure` (no pyplot, no global
backend), writes one PNG and returns its path, so it is safe in worker threads
and headless machines.

```python
training_curves({"loss": [(0, 0.09), (1, 0.07)], "val_loss": [(0, 0.08), (1, 0.07)]}, "curves.png")
predicted_vs_true(y_true, y_pred, "t01", "t01.png")
crop_gallery(crops, y_true, y_pred, asset_ids, "crops.png")
```
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from galaxyzoo import schema

History = dict[str, list[tuple[int, float]]]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
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
    and optionally `rmse`, `val_rmse`, `lr`) to `(epoch, value)` pairs. A
    dashed line marks the best epoch (`best_epoch`).
    """
    panels = [("r2_flat", "R² (flat)"), ("loss", "Loss"), ("rmse", "RMSE"), ("lr", "Learning rate")]
    panels = [(key, label) for key, label in panels if key in history]
    columns = 2 if len(panels) > 1 else 1
    rows = max(1, -(-len(panels) // columns))
    fig = _figure(6.5 * columns, 4.5 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    from matplotlib.ticker import MaxNLocator

    marked = best_epoch(history)
    for ax, (key, label) in zip(axes, panels):
        for name, colour in ((key, "tab:blue"), (f"val_{key}", "tab:orange")):
            if name in history:
                steps, values = zip(*history[name])
                ax.plot(steps, values, color=colour, label=name if key == "lr" else
                        ("train_" if name == key else "") + name)
        if marked is not None:
            ax.axvline(marked, color="green", linestyle="--", linewidth=1, label=f"best epoch {marked}")
        if key == "lr":
            ax.set_yscale("log")
        ax.set_title(label)
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def predicted_vs_true(y_true: np.ndarray, y_pred: np.ndarray, question_id: str, path: str | Path,
                      max_points: int = 20000, seed: int = 0) -> Path:
    """One panel per answer of `question_id`: predicted against true fraction, with RMSE.

    At most `max_points` galaxies are drawn (a fixed random subset), so the
    figure stays small for a 60k-galaxy test set.
    """
    question = schema.QUESTION_BY_ID[question_id]
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) > max_points:
        keep = np.random.default_rng(seed).choice(len(y_true), max_points, replace=False)
        y_true, y_pred = y_true[keep], y_pred[keep]
    answers = question.answers
    fig = _figure(3.2 * len(answers), 3.4)
    axes = fig.subplots(1, len(answers), squeeze=False)[0]
    for ax, answer in zip(axes, answers):
        t, p = y_true[:, answer.index], y_pred[:, answer.index]
        rmse = float(np.sqrt(np.mean(np.square(t - p)))) if len(t) else float("nan")
        ax.scatter(t, p, s=4, alpha=0.3 if len(t) > 2000 else 0.6, linewidths=0)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_title(f"a{answer.number:02d} {answer.slug}\nRMSE {rmse:.3f}", fontsize=9)
        ax.set_xlabel("true fraction")
    axes[0].set_ylabel("predicted fraction")
    fig.suptitle(f"{question.id} {question.slug}: {question.text}", fontsize=10)
    return _save(fig, path)


def crop_gallery(crops: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, asset_ids, path: str | Path,
                 columns: int = 4) -> Path:
    """Crops with their predicted (and true) answers to the first question and the likeliest path.

    `crops` are uint8 `(n, H, W, C)` as stored; each panel is titled with the
    asset id, t01's three fractions as `pred (true)` and the predicted most
    likely answer path through the tree.
    """
    n = len(crops)
    rows = max(1, -(-n // columns))
    fig = _figure(3.3 * columns, 3.9 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    t01 = schema.QUESTION_BY_ID["t01"]
    paths = schema.most_likely_path(np.asarray(y_pred)) if n else []
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        image = crops[i]
        # Stores keep colour as BGR (OpenCV's order); matplotlib wants RGB.
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image[..., ::-1], cmap="gray", vmin=0, vmax=255)
        fractions = "\n".join(
            f"{a.slug[:12]} {y_pred[i, a.index]:.2f} ({y_true[i, a.index]:.2f})" for a in t01.answers
        )
        path_text = " > ".join(
            f"{schema.ANSWER_BY_STEM[stem].question_id}:{schema.ANSWER_BY_STEM[stem].slug}" for stem in paths[i][:4]
        )
        ax.set_title(f"{asset_ids[i]}\n{fractions}\n{path_text}", fontsize=7)
    fig.suptitle("test crops: predicted (true)", fontsize=10)
    return _save(fig, path)
