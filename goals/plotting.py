"""Figures of the companion: one theme, one colour and one marker per strategy everywhere.

Every notebook draws through this module, so the look of a strategy never changes between
figures. The functions take the tidy record frames of the experiment engine (``runs``, ``evals``,
``trace``; see ``goals.records``) or small frames built by the notebooks, draw onto matplotlib axes
and return the figure. :func:`save_figure` writes each figure as PDF and PNG with fixed metadata, so
re-running a profile on the same machine gives byte-identical files.

Spread over seeds is always drawn the same way: the median as a line and the band between the
smallest and the largest seed, after interpolating each seed onto a common FE grid.

The robustness figures (performance profiles, per-seed values) are drawn by :mod:`goals.robust`,
which takes its colours and markers from :func:`strategy_style`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from goals.labels import DIRECTION_LABELS, LINE_SEARCH_STRATEGIES, STRATEGIES, STRATEGY_LABELS

logger = logging.getLogger(__name__)

#: Resolution of the PNG files: enough for a README, small enough to commit.
PNG_DPI: int = 110

#: Colour-blind palette (seaborn "colorblind") plus black, one entry per strategy, in the order of
#: ``goals.labels.STRATEGIES``. Line searches get the saturated colours.
_STRATEGY_COLORS: dict[str, str] = {
    "goals": "#0173b2",
    "gos-ls": "#d55e00",
    "gols-i": "#029e73",
    "gols-back": "#cc78bc",
    "sls-armijo": "#de8f05",
    "constant": "#000000",
    "constant-x10": "#949494",
    "constant-x0.1": "#ca9161",
    "step-decay": "#56b4e9",
    "cosine": "#fbafe4",
    "cosine-restarts": "#ece133",
}

_STRATEGY_MARKERS: dict[str, str] = {
    "goals": "o",
    "gos-ls": "s",
    "gols-i": "^",
    "gols-back": "v",
    "sls-armijo": "D",
    "constant": "P",
    "constant-x10": "X",
    "constant-x0.1": "*",
    "step-decay": "<",
    "cosine": ">",
    "cosine-restarts": "h",
}

#: Human-readable names of the metric columns of the tidy frames.
METRIC_LABELS: dict[str, str] = {
    "train_loss": "training loss",
    "test_loss": "test loss",
    "train_error": "training error",
    "test_error": "test error",
    "final_train_loss": "final training loss",
    "final_test_loss": "final test loss",
    "final_train_error": "final training error",
    "final_test_error": "final test error",
    "loss": "mini-batch loss",
    "step_size": "step size",
    "evaluations": "FEs per iteration",
}

_THEME_APPLIED = False


def use_theme(context: str = "paper", font_scale: float = 1.1) -> None:
    """Set the seaborn theme used by every figure of the companion.

    Call once at the top of a notebook; the figure functions call it too, so it is safe to forget.

    Args:
        context: seaborn context ("paper", "notebook", "talk").
        font_scale: scale of all fonts relative to the context.
    """
    global _THEME_APPLIED
    sns.set_theme(
        context=context,
        style="whitegrid",
        palette="colorblind",
        font_scale=font_scale,
        rc={
            "figure.dpi": 90,
            "savefig.dpi": PNG_DPI,
            "savefig.bbox": "tight",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "lines.linewidth": 1.6,
            "lines.markersize": 5.0,
            "pdf.fonttype": 42,
        },
    )
    _THEME_APPLIED = True


def _ensure_theme() -> None:
    if not _THEME_APPLIED:
        use_theme()


def strategy_style(strategy: str) -> dict[str, str]:
    """Return the fixed colour, marker, line style and label of a strategy.

    Args:
        strategy: a strategy id from ``goals.labels.STRATEGIES``.

    Returns:
        ``{"color": ..., "marker": ..., "linestyle": ..., "label": ...}``; the dict can be passed
        as keyword arguments to ``Axes.plot``.

    Raises:
        ValueError: for an unknown strategy id.
    """
    if strategy not in STRATEGY_LABELS:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}")
    linestyle = "-" if strategy in LINE_SEARCH_STRATEGIES else "--"
    return {
        "color": _STRATEGY_COLORS[strategy],
        "marker": _STRATEGY_MARKERS[strategy],
        "linestyle": linestyle,
        "label": STRATEGY_LABELS[strategy],
    }


def ordered_strategies(strategies: Iterable[str]) -> list[str]:
    """Sort strategy ids into the canonical order of ``goals.labels``; unknown ids go last."""
    present = list(dict.fromkeys(strategies))
    known = [s for s in STRATEGIES if s in present]
    return known + sorted(s for s in present if s not in STRATEGY_LABELS)


def save_figure(fig: Figure, path_stem: str | Path, dpi: int = PNG_DPI,
                info: Mapping[str, Any] | None = None) -> list[Path]:
    """Write a figure as ``<path_stem>.pdf`` and ``<path_stem>.png``.

    Parent folders are created. Metadata that would change on every run (creation date, software
    version) is left out, so the same figure gives the same bytes; ``info`` (how the figure was
    made: profile, configuration, versions, commit, e.g. ``goals.tables.provenance(...)``) goes
    into the PDF's Subject and the PNG's Description field.

    Args:
        fig: the figure to write.
        path_stem: file path without suffix, e.g. ``figures/quick/comparison_digits_mlp``.
        dpi: resolution of the PNG file.
        info: provenance entries to embed.

    Returns:
        The two paths written, PDF first.
    """
    stem = Path(path_stem)
    if stem.suffix in {".pdf", ".png"}:
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    pdf_path = stem.with_name(f"{stem.name}.pdf")
    png_path = stem.with_name(f"{stem.name}.png")
    text = "; ".join(f"{key}={value}" for key, value in (info or {}).items())
    pdf_meta: dict[str, Any] = {"CreationDate": None, "Producer": None, "Creator": "goals"}
    png_meta: dict[str, Any] = {"Software": None}
    if text:
        pdf_meta["Subject"] = text
        png_meta["Description"] = text
    fig.savefig(pdf_path, format="pdf", metadata=pdf_meta)
    fig.savefig(png_path, format="png", dpi=dpi, metadata=png_meta)
    logger.info("wrote %s and %s", pdf_path, png_path.name)
    return [pdf_path, png_path]


# ---------------------------------------------------------------------------------------------
# Spread over seeds
# ---------------------------------------------------------------------------------------------


def seed_band(frame: pd.DataFrame, x: str, y: str, seed: str = "seed",
              grid_size: int = 60, log_x: bool = False) -> pd.DataFrame:
    """Median, minimum and maximum of ``y`` over seeds on a common grid of ``x``.

    Each seed's curve is linearly interpolated onto the grid; grid points outside a seed's range
    of ``x`` do not use that seed. Non-finite values of ``y`` (a diverged run) are kept as NaN and
    left out of the statistics at that point.

    Args:
        frame: tidy frame with columns ``x``, ``y`` and ``seed`` for one strategy.
        x: column of the horizontal axis (e.g. "fe", "iteration").
        y: column of the vertical axis.
        seed: column naming the seed.
        grid_size: number of grid points.
        log_x: space the grid logarithmically (``x`` must be positive).

    Returns:
        Frame with columns ``x``, "median", "low", "high", "count".
    """
    clean = frame[[x, y, seed]].copy()
    clean[y] = pd.to_numeric(clean[y], errors="coerce").astype(float)
    clean.loc[~np.isfinite(clean[y]), y] = np.nan
    if clean.empty:
        return pd.DataFrame(columns=[x, "median", "low", "high", "count"])
    lo, hi = float(clean[x].min()), float(clean[x].max())
    if log_x:
        lo = max(lo, 1e-12)
        grid = np.geomspace(lo, max(hi, lo * (1 + 1e-9)), grid_size)
    else:
        grid = np.linspace(lo, hi, grid_size) if hi > lo else np.array([lo])

    columns = []
    for _, part in clean.groupby(seed):
        part = part.sort_values(x).drop_duplicates(subset=x, keep="last")
        xs = part[x].to_numpy(dtype=float)
        ys = part[y].to_numpy(dtype=float)
        if len(xs) == 1:
            values = np.where(np.isclose(grid, xs[0]), ys[0], np.nan)
        else:
            values = np.interp(grid, xs, ys, left=np.nan, right=np.nan)
            # np.interp spreads a NaN over its neighbours only at exact points; mark the
            # intervals next to a non-finite sample as missing too.
            bad = np.isnan(ys)
            if bad.any():
                idx = np.clip(np.searchsorted(xs, grid, side="right") - 1, 0, len(xs) - 1)
                nxt = np.clip(idx + 1, 0, len(xs) - 1)
                exact = np.isclose(grid, xs[idx])
                values[bad[idx] | (bad[nxt] & ~exact)] = np.nan
        columns.append(values)
    stack = np.vstack(columns)
    count = np.sum(~np.isnan(stack), axis=0)
    with warnings.catch_warnings():
        # All-NaN grid points (no seed covers them) are expected and stay NaN.
        warnings.simplefilter("ignore", category=RuntimeWarning)
        median = np.nanmedian(stack, axis=0)
        low = np.nanmin(stack, axis=0)
        high = np.nanmax(stack, axis=0)
    return pd.DataFrame({x: grid, "median": median, "low": low, "high": high, "count": count})


def plot_seed_band(ax: Axes, frame: pd.DataFrame, x: str, y: str, strategy: str,
                   log_x: bool = False, linestyle: str | None = None,
                   label: str | None = None, markevery: int = 12) -> None:
    """Draw one strategy's median line and min-max band over seeds onto ``ax``."""
    band = seed_band(frame, x, y, log_x=log_x)
    if band.empty or band["median"].isna().all():
        return
    style = strategy_style(strategy)
    ax.fill_between(band[x], band["low"], band["high"], color=style["color"], alpha=0.18,
                    linewidth=0)
    ax.plot(band[x], band["median"], color=style["color"], marker=style["marker"],
            linestyle=linestyle or style["linestyle"], markevery=markevery,
            label=label if label is not None else style["label"])


# ---------------------------------------------------------------------------------------------
# Optimizer comparison (notebook 02)
# ---------------------------------------------------------------------------------------------


def plot_metric_vs_fe(evals: pd.DataFrame, metrics: Sequence[str] = ("train_loss", "test_error"),
                      title: str | None = None, log_loss: bool = True,
                      strategies: Sequence[str] | None = None) -> Figure:
    """Training loss and test error against FEs, one column per search direction.

    Args:
        evals: tidy ``evals`` frame restricted to one (dataset, model); columns ``direction``,
            ``strategy``, ``seed``, ``fe`` and the metric columns.
        metrics: metric columns, one row of panels each.
        title: figure title.
        log_loss: log scale for loss metrics.
        strategies: strategies to draw (default: all present, in canonical order).

    Returns:
        The figure.
    """
    _ensure_theme()
    directions = [d for d in DIRECTION_LABELS if d in set(evals["direction"])]
    directions += sorted(set(evals["direction"]) - set(directions))
    if not directions:
        raise ValueError("evals frame is empty: nothing to plot")
    chosen = ordered_strategies(strategies or evals["strategy"].unique())

    fig, axes = plt.subplots(len(metrics), len(directions), squeeze=False, sharex="col",
                             figsize=(3.6 * len(directions) + 1.8, 2.7 * len(metrics)))
    for col, direction in enumerate(directions):
        sub = evals[evals["direction"] == direction]
        for row, metric in enumerate(metrics):
            ax = axes[row][col]
            for strategy in chosen:
                part = sub[sub["strategy"] == strategy]
                if not part.empty:
                    plot_seed_band(ax, part, "fe", metric, strategy)
            if log_loss and "loss" in metric:
                _log_scale_if_positive(ax, sub[metric])
            if row == 0:
                ax.set_title(DIRECTION_LABELS.get(direction, direction))
            if row == len(metrics) - 1:
                ax.set_xlabel("function evaluations (FEs)")
            if col == 0:
                ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    _figure_legend(fig, axes)
    if title:
        fig.suptitle(title, y=1.0)
    fig.tight_layout(rect=(0, 0, _legend_room(fig), 1))
    return fig


def plot_step_sizes(trace: pd.DataFrame, title: str | None = None, x: str = "iteration",
                    strategies: Sequence[str] | None = None, smooth: int | None = None) -> Figure:
    """Step size (learning rate) against iteration on a log scale, one panel per direction.

    Args:
        trace: tidy ``trace`` frame restricted to one (dataset, model).
        title: figure title.
        x: horizontal axis column ("iteration" or "fe").
        strategies: strategies to draw (default: all present).
        smooth: window (iterations) of a rolling median applied to each seed's step sizes before
            the spread over seeds is taken; line-search steps jump from one iteration to the
            next. Default: 1/40 of the longest run; 1 draws the raw values.

    Returns:
        The figure.
    """
    _ensure_theme()
    directions = [d for d in DIRECTION_LABELS if d in set(trace["direction"])]
    if not directions:
        raise ValueError("trace frame is empty: nothing to plot")
    if smooth is None:
        smooth = max(1, int(trace.groupby("run_id").size().max() // 40)) if "run_id" in trace \
            else 1
    if smooth > 1:
        keys = [c for c in ("run_id", "direction", "strategy", "seed") if c in trace]
        trace = trace.sort_values(keys + [x]).copy()
        trace["step_size"] = trace.groupby(keys)["step_size"].transform(
            lambda v: v.rolling(smooth, min_periods=1, center=True).median())
    chosen = ordered_strategies(strategies or trace["strategy"].unique())
    fig, axes = plt.subplots(1, len(directions), squeeze=False, sharey=False,
                             figsize=(3.6 * len(directions) + 1.8, 3.4))
    for col, direction in enumerate(directions):
        ax = axes[0][col]
        sub = trace[(trace["direction"] == direction) & (trace["step_size"] > 0)]
        for strategy in chosen:
            part = sub[sub["strategy"] == strategy]
            if not part.empty:
                plot_seed_band(ax, part, x, "step_size", strategy)
        log_axis(ax, "y")
        ax.set_title(DIRECTION_LABELS.get(direction, direction))
        ax.set_xlabel("iteration" if x == "iteration" else "function evaluations (FEs)")
        if col == 0:
            ax.set_ylabel("step size (learning rate)"
                          + (f"\nrolling median of {smooth} iterations" if smooth > 1 else ""))
    _figure_legend(fig, axes)
    if title:
        fig.suptitle(title, y=1.02)
    fig.tight_layout(rect=(0, 0, _legend_room(fig), 1))
    return fig


def plot_fe_per_iteration(trace: pd.DataFrame, title: str | None = None,
                          strategies: Sequence[str] | None = None, value: str = "evaluations",
                          hue: str | None = "direction") -> Figure:
    """Distribution of FEs spent per iteration (or per search) by each line search.

    Args:
        trace: tidy ``trace`` frame (any problems), or any frame with ``strategy`` and ``value``.
        title: figure title.
        strategies: strategies to draw (default: the line searches present).
        value: column holding the FE count.
        hue: column splitting each strategy's box (default "direction"; ignored when absent or
            constant).

    Returns:
        The figure: one box per strategy (and hue value), whiskers over the whole range.
    """
    _ensure_theme()
    if strategies is None:
        strategies = [s for s in LINE_SEARCH_STRATEGIES if s in set(trace["strategy"])]
    chosen = ordered_strategies(strategies)
    data = trace[trace["strategy"].isin(chosen)].copy()
    if data.empty:
        raise ValueError("no line-search iterations in the frame")
    data["label"] = data["strategy"].map(STRATEGY_LABELS).fillna(data["strategy"])
    order = [STRATEGY_LABELS.get(s, s) for s in chosen if s in set(data["strategy"])]
    palette = {STRATEGY_LABELS.get(s, s): strategy_style(s)["color"] for s in chosen}
    split = hue is not None and hue in data and data[hue].nunique() > 1
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    if split:
        names = DIRECTION_LABELS if hue == "direction" else {}
        data["hue label"] = data[hue].map(lambda v: names.get(v, str(v)))
        sns.boxplot(data=data, x="label", y=value, hue="hue label", order=order, ax=ax,
                    whis=(0, 100), linewidth=0.8, palette="Greys")
        ax.legend(title={"direction": "direction", "mbss": "MBSS"}.get(hue, hue),
                  loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        sns.boxplot(data=data, x="label", y=value, hue="label", order=order, ax=ax,
                    whis=(0, 100), linewidth=0.8, palette=palette, legend=False)
    for tick, strategy in zip(ax.get_xticklabels(), [s for s in chosen
                                                     if s in set(data["strategy"])]):
        tick.set_color(strategy_style(strategy)["color"])
    ax.set_xlabel("")
    ax.set_ylabel("FEs per iteration" if value == "evaluations" else METRIC_LABELS.get(value,
                                                                                       value))
    ax.tick_params(axis="x", rotation=20)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_final_metric(runs: pd.DataFrame, metric: str = "final_test_error",
                      title: str | None = None) -> Figure:
    """Final metric per strategy and direction, one point per seed (strip plot).

    Args:
        runs: tidy ``runs`` frame restricted to one (dataset, model).
        metric: a ``final_*`` column.
        title: figure title.

    Returns:
        The figure.
    """
    _ensure_theme()
    data = runs.copy()
    data[metric] = pd.to_numeric(data[metric], errors="coerce")
    data = data[np.isfinite(data[metric])]
    if data.empty:
        raise ValueError(f"no finite values of {metric!r} to plot")
    chosen = ordered_strategies(data["strategy"].unique())
    directions = [d for d in DIRECTION_LABELS if d in set(data["direction"])]
    fig, axes = plt.subplots(1, len(directions), squeeze=False, sharey=True,
                             figsize=(3.0 * len(directions) + 0.6, 0.32 * len(chosen) + 1.2))
    for col, direction in enumerate(directions):
        ax = axes[0][col]
        sub = data[data["direction"] == direction]
        for pos, strategy in enumerate(chosen):
            values = sub.loc[sub["strategy"] == strategy, metric].to_numpy(dtype=float)
            style = strategy_style(strategy)
            ax.scatter(values, np.full(len(values), pos), color=style["color"],
                       marker=style["marker"], s=22, zorder=3)
            if len(values):
                ax.plot([np.median(values)] * 2, [pos - 0.3, pos + 0.3], color=style["color"],
                        linewidth=1.4)
        ax.set_yticks(range(len(chosen)), [STRATEGY_LABELS.get(s, s) for s in chosen])
        ax.invert_yaxis()
        ax.set_title(DIRECTION_LABELS.get(direction, direction))
        ax.set_xlabel(METRIC_LABELS.get(metric, metric))
        if "loss" in metric:
            _log_scale_if_positive(ax, sub[metric])
    if title:
        fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Line-search behaviour (notebook 01)
# ---------------------------------------------------------------------------------------------


def plot_line_profiles(profiles: pd.DataFrame, landings: pd.DataFrame | None = None,
                       title: str | None = None) -> Figure:
    """``F`` and ``F'`` along a search direction under static and dynamic MBSS.

    Args:
        profiles: frame with columns ``mbss`` ("static"/"dynamic"), ``step_size``, ``F``,
            ``dF`` and optionally ``direction_index`` (several lines are drawn thinly, the first
            one boldly).
        landings: optional frame with columns ``mbss``, ``strategy``, ``step_size``: where each
            line search accepted its step on that line; drawn as markers on the ``F'`` panel.
        title: figure title.

    Returns:
        The figure: columns static and dynamic MBSS, rows ``F`` and ``F'``.
    """
    _ensure_theme()
    modes = [m for m in ("static", "dynamic") if m in set(profiles["mbss"])]
    if not modes:
        raise ValueError("profiles frame needs rows with mbss 'static' or 'dynamic'")
    fig, axes = plt.subplots(2, len(modes), squeeze=False, sharex=True, sharey="row",
                             figsize=(4.2 * len(modes) + 1.8, 5.0))
    for col, mode in enumerate(modes):
        sub = profiles[profiles["mbss"] == mode]
        lines = sorted(sub["direction_index"].unique()) if "direction_index" in sub else [0]
        for k, line in enumerate(lines):
            part = sub[sub["direction_index"] == line] if "direction_index" in sub else sub
            part = part.sort_values("step_size")
            width, alpha = (1.4, 1.0) if k == 0 else (0.7, 0.35)
            axes[0][col].plot(part["step_size"], part["F"], color="0.2", linewidth=width,
                              alpha=alpha, marker="." if k == 0 else None, markersize=3)
            axes[1][col].plot(part["step_size"], part["dF"], color="0.2", linewidth=width,
                              alpha=alpha, marker="." if k == 0 else None, markersize=3)
        axes[1][col].axhline(0.0, color="0.5", linewidth=0.8, linestyle=":")
        if landings is not None and not landings.empty:
            land = landings[landings["mbss"] == mode]
            for strategy in ordered_strategies(land["strategy"].unique()):
                style = strategy_style(strategy)
                steps = land.loc[land["strategy"] == strategy, "step_size"].to_numpy(float)
                for ax in (axes[0][col], axes[1][col]):
                    for step in steps:
                        ax.axvline(step, color=style["color"], linewidth=1.0, alpha=0.6,
                                   linestyle=style["linestyle"])
                axes[1][col].scatter(steps, np.zeros(len(steps)), color=style["color"],
                                     marker=style["marker"], s=36, zorder=4,
                                     label=style["label"] if col == 0 else None)
        axes[0][col].set_title(f"{mode} MBSS")
        axes[1][col].set_xlabel("step size a")
        log_axis(axes[1][col], "x")
    axes[0][0].set_ylabel("F(a)  (loss)")
    axes[1][0].set_ylabel("F'(a)  (directional derivative)")
    if landings is not None and not landings.empty:
        _figure_legend(fig, axes, title="accepted step")
    if title:
        fig.suptitle(title, y=1.01)
    fig.tight_layout(rect=(0, 0, _legend_room(fig) if landings is not None else 1, 1))
    return fig


def plot_step_spread(steps: pd.DataFrame, title: str | None = None,
                     hue: str = "mbss") -> Figure:
    """Spread of accepted step sizes over repeated searches from the same point and direction.

    Each strategy gets one row in its own colour; within a row, the values of ``hue`` (static and
    dynamic MBSS by default) are drawn as separate bands, hollow markers for the first value and
    filled ones for the second. A vertical tick marks each band's median.

    Args:
        steps: frame with columns ``strategy``, ``step_size`` and ``hue``.
        title: figure title.
        hue: column that splits each strategy's row.

    Returns:
        The figure, step sizes on a log scale.
    """
    _ensure_theme()
    data = steps[steps["step_size"] > 0]
    if data.empty:
        raise ValueError("no positive step sizes to plot")
    chosen = ordered_strategies(data["strategy"].unique())
    groups = list(dict.fromkeys(data[hue])) if hue in data else [None]
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(chosen) * max(1, len(groups)) ** 0.5 + 1.3))
    height = 0.8 / len(groups)
    for row, strategy in enumerate(chosen):
        style = strategy_style(strategy)
        for k, group in enumerate(groups):
            mask = data["strategy"] == strategy
            if group is not None:
                mask &= data[hue] == group
            values = data.loc[mask, "step_size"].to_numpy(dtype=float)
            if not len(values):
                continue
            centre = row - 0.4 + height * (k + 0.5)
            jitter = rng.uniform(-0.3, 0.3, len(values)) * height
            filled = k % 2 == 1 or len(groups) == 1
            ax.scatter(values, centre + jitter, s=16, marker=style["marker"], alpha=0.8,
                       facecolors=style["color"] if filled else "none",
                       edgecolors=style["color"], linewidths=0.8, zorder=3)
            ax.plot([np.median(values)] * 2, [centre - height / 2, centre + height / 2],
                    color=style["color"], linewidth=2.0, zorder=4)
    log_axis(ax, "x")
    ax.set_yticks(range(len(chosen)), [STRATEGY_LABELS.get(s, s) for s in chosen])
    for tick, strategy in zip(ax.get_yticklabels(), chosen):
        tick.set_color(strategy_style(strategy)["color"])
    ax.set_ylim(len(chosen) - 0.5, -0.5)
    if len(groups) > 1:
        handles = [plt.Line2D([], [], linestyle="none", marker="o", color="0.3",
                              markerfacecolor="none" if k % 2 == 0 else "0.3",
                              label=f"{group} MBSS" if hue == "mbss" else str(group))
                   for k, group in enumerate(groups)]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlabel("accepted step size (line: median)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_sensitivity(frame: pd.DataFrame, parameter_column: str = "value",
                     metric: str = "final_train_loss", title: str | None = None) -> Figure:
    """Outcome of a strategy as one of its constants is varied, one panel per constant.

    Args:
        frame: columns ``constant`` (name), ``parameter_column`` (value), ``metric``, ``seed``
            and ``strategy``.
        parameter_column: column holding the constant's value.
        metric: outcome column (lower is better).
        title: figure title.

    Returns:
        The figure.
    """
    _ensure_theme()
    constants = list(dict.fromkeys(frame["constant"]))
    if not constants:
        raise ValueError("sensitivity frame is empty")
    fig, axes = plt.subplots(1, len(constants), squeeze=False, sharey=True,
                             figsize=(3.0 * len(constants) + 0.6, 2.8))
    for col, constant in enumerate(constants):
        ax = axes[0][col]
        sub = frame[frame["constant"] == constant]
        for strategy in ordered_strategies(sub["strategy"].unique()):
            part = sub[sub["strategy"] == strategy]
            style = strategy_style(strategy)
            stats = part.groupby(parameter_column)[metric].agg(["median", "min", "max"])
            xs = stats.index.to_numpy(dtype=float)
            ax.fill_between(xs, stats["min"], stats["max"], color=style["color"], alpha=0.18,
                            linewidth=0)
            ax.plot(xs, stats["median"], color=style["color"], marker=style["marker"],
                    label=style["label"])
            if "default" in part:
                default = part["default"].dropna()
                if not default.empty:
                    ax.axvline(float(default.iloc[0]), color="0.5", linewidth=0.8,
                               linestyle=":")
        values = sub[parameter_column].to_numpy(dtype=float)
        if np.all(values > 0) and values.max() / max(values.min(), 1e-300) > 20:
            log_axis(ax, "x")
        ax.set_xlabel(constant)
        if col == 0:
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    if "loss" in metric:
        _log_scale_if_positive(axes[0][0], frame[metric])
    _figure_legend(fig, axes)
    if title:
        fig.suptitle(title, y=1.02)
    fig.tight_layout(rect=(0, 0, _legend_room(fig), 1))
    return fig


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _figure_legend(fig: Figure, axes: np.ndarray, title: str | None = None) -> None:
    """One legend for the whole figure, right of the panels, without duplicate entries."""
    handles: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label and not label.startswith("_"):
                handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="center right", title=title,
                   bbox_to_anchor=(1.0, 0.5), fontsize="small")


def _legend_room(fig: Figure, inches: float = 1.9) -> float:
    """Right edge of the panels that leaves ``inches`` for the figure legend."""
    return max(0.5, 1.0 - inches / fig.get_figwidth())


def _log_scale_if_positive(ax: Axes, values: pd.Series) -> None:
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    finite = numeric[np.isfinite(numeric)]
    if finite.size and np.all(finite > 0):
        log_axis(ax, "y")


def log_axis(ax: Axes, axis: str = "y") -> None:
    """Log scale with readable tick labels (1, 2, 5 steps when the data span few decades)."""
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    decades = math.log10(high / low) if low > 0 and high > low else 1.0
    subs = (1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)
    target.set_major_locator(LogLocator(base=10.0, subs=subs, numticks=12))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_formatter(NullFormatter())
