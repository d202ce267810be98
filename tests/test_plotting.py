"""Figures: fixed strategy styles, seed bands, and files that are small, valid and repeatable."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from goals import plotting
from goals.labels import LINE_SEARCH_STRATEGIES, STRATEGIES, STRATEGY_LABELS


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def evals_frame(strategies=("goals", "constant"), directions=("sgd", "adam"), seeds=(0, 1, 2)):
    """A small tidy ``evals`` frame whose curves differ per strategy, direction and seed."""
    rows = []
    for d_index, direction in enumerate(directions):
        for s_index, strategy in enumerate(strategies):
            for seed in seeds:
                for fe in (0, 50, 100, 150, 200):
                    loss = (1 + s_index + d_index) * np.exp(-fe / 100) + 0.01 * (seed + 1)
                    rows.append({"dataset": "digits", "model": "mlp", "direction": direction,
                                 "strategy": strategy, "seed": seed, "fe": fe,
                                 "train_loss": loss, "test_error": min(1.0, loss / 4)})
    return pd.DataFrame(rows)


def test_every_strategy_has_its_own_colour_and_marker():
    styles = {s: plotting.strategy_style(s) for s in STRATEGIES}
    colours = [to_hex(style["color"]) for style in styles.values()]
    markers = [style["marker"] for style in styles.values()]
    assert len(set(colours)) == len(STRATEGIES)
    assert len(set(markers)) == len(STRATEGIES)
    for strategy, style in styles.items():
        assert style["label"] == STRATEGY_LABELS[strategy]
        # Line searches solid, schedules dashed: the two families read apart at a glance.
        assert (style["linestyle"] == "-") == (strategy in LINE_SEARCH_STRATEGIES)


def test_strategy_style_is_stable_and_rejects_unknown_ids():
    assert plotting.strategy_style("goals") == plotting.strategy_style("goals")
    with pytest.raises(ValueError, match="unknown strategy 'adamw'"):
        plotting.strategy_style("adamw")


def test_ordered_strategies_follows_the_canonical_order():
    assert plotting.ordered_strategies(["cosine", "zzz", "goals", "constant", "goals"]) == [
        "goals", "constant", "cosine", "zzz"]


def test_seed_band_median_min_max_on_a_common_grid():
    frame = pd.DataFrame({
        "seed": [0, 0, 1, 1, 2, 2],
        "fe": [0, 10, 0, 10, 0, 10],
        "loss": [1.0, 3.0, 2.0, 4.0, 6.0, 8.0],
    })
    band = plotting.seed_band(frame, "fe", "loss", grid_size=3)
    assert band["fe"].tolist() == [0.0, 5.0, 10.0]
    assert band["median"].tolist() == [2.0, 3.0, 4.0]
    assert band["low"].tolist() == [1.0, 2.0, 3.0]
    assert band["high"].tolist() == [6.0, 7.0, 8.0]
    assert band["count"].tolist() == [3, 3, 3]


def test_seed_band_leaves_out_a_diverged_seed_and_points_outside_a_seed_range():
    frame = pd.DataFrame({
        "seed": [0, 0, 0, 1, 1],
        "fe": [0, 10, 20, 0, 10],
        "loss": [1.0, 1.0, 1.0, 3.0, np.inf],  # seed 1 diverges and stops early
    })
    band = plotting.seed_band(frame, "fe", "loss", grid_size=5)
    assert band["median"].iloc[0] == 2.0  # both seeds at FE 0
    assert band["count"].iloc[0] == 2
    # Between FE 0 and 10 seed 1 is next to its non-finite sample: only seed 0 counts.
    assert band["count"].iloc[1] == 1 and band["median"].iloc[1] == 1.0
    # Beyond FE 10 seed 1 has no data at all.
    assert band["count"].iloc[-1] == 1 and band["high"].iloc[-1] == 1.0


def test_save_figure_writes_small_valid_files_with_identical_bytes_twice(tmp_path):
    fig = plotting.plot_metric_vs_fe(evals_frame(), title="t")
    first = plotting.save_figure(fig, tmp_path / "a" / "curves", info={"profile": "test"})
    assert [p.name for p in first] == ["curves.pdf", "curves.png"]
    pdf, png = (p.read_bytes() for p in first)
    assert pdf.startswith(b"%PDF") and png.startswith(b"\x89PNG")
    assert 1_000 < len(png) < 400_000 and 1_000 < len(pdf) < 400_000
    assert b"profile=test" in png  # the provenance travels in the file
    second = plotting.save_figure(fig, tmp_path / "b" / "curves.png")  # suffix is dropped
    assert second[0].read_bytes() == (tmp_path / "b" / "curves.pdf").read_bytes()
    fig2 = plotting.plot_metric_vs_fe(evals_frame(), title="t")
    third = plotting.save_figure(fig2, tmp_path / "c" / "curves", info={"profile": "test"})
    assert third[0].read_bytes() == pdf
    assert third[1].read_bytes() == png


def test_metric_figure_has_a_panel_per_metric_and_direction_in_strategy_colours():
    fig = plotting.plot_metric_vs_fe(evals_frame(strategies=("constant", "goals")),
                                     metrics=("train_loss", "test_error"))
    panels = [ax for ax in fig.axes if ax.get_title() or ax.get_ylabel() or ax.get_xlabel()]
    assert len(panels) == 4
    first = fig.axes[0]
    assert first.get_title() == "SGD" and first.get_yscale() == "log"
    colours = {line.get_label(): to_hex(line.get_color()) for line in first.get_lines()}
    for strategy in ("goals", "constant"):
        style = plotting.strategy_style(strategy)
        assert colours[style["label"]] == to_hex(style["color"])
    legend_labels = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend_labels == [STRATEGY_LABELS["goals"], STRATEGY_LABELS["constant"]]


def test_step_size_figure_uses_a_log_axis_and_smooths_per_seed():
    rows = [{"run_id": f"r{seed}", "direction": "sgd", "strategy": "goals", "seed": seed,
             "iteration": i, "step_size": 10.0 ** (-(i % 3)), "evaluations": 2}
            for seed in (0, 1) for i in range(1, 81)]
    fig = plotting.plot_step_sizes(pd.DataFrame(rows), smooth=1)
    assert fig.axes[0].get_yscale() == "log"
    raw_high = fig.axes[0].get_lines()[0].get_ydata().max()
    fig = plotting.plot_step_sizes(pd.DataFrame(rows), smooth=9)
    smoothed = fig.axes[0].get_lines()[0].get_ydata()
    assert raw_high > 0.5  # the spikes to 1 show through the interpolation
    assert np.nanmax(smoothed) < 0.5  # the rolling median removes the periodic spikes


def test_line_profile_figure_marks_landings_in_strategy_colours():
    steps = np.geomspace(1e-3, 1.0, 12)
    profiles = pd.concat([
        pd.DataFrame({"mbss": mode, "step_size": steps, "F": (steps - 0.2) ** 2,
                      "dF": 2 * (steps - 0.2)}) for mode in ("static", "dynamic")])
    landings = pd.DataFrame({"mbss": ["static", "dynamic"], "strategy": ["gols-i", "gols-i"],
                             "step_size": [0.2, 0.25]})
    fig = plotting.plot_line_profiles(profiles, landings)
    axes = fig.axes[:4]
    assert [ax.get_title() for ax in axes[:2]] == ["static MBSS", "dynamic MBSS"]
    colour = to_hex(plotting.strategy_style("gols-i")["color"])
    marker_colours = [to_hex(c.get_facecolor()[0]) for c in axes[2].collections]
    assert colour in marker_colours
    assert axes[2].get_xscale() == "log"


def test_step_spread_and_fe_figures_reject_empty_input():
    with pytest.raises(ValueError, match="no positive step sizes"):
        plotting.plot_step_spread(pd.DataFrame({"strategy": ["goals"], "step_size": [0.0],
                                                "mbss": ["static"]}))
    with pytest.raises(ValueError, match="no line-search iterations"):
        plotting.plot_fe_per_iteration(pd.DataFrame({"strategy": ["constant"],
                                                     "evaluations": [1]}))


def test_step_spread_draws_one_row_per_strategy_with_a_median_tick():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"strategy": np.repeat(["gos-ls", "goals"], 10),
                          "mbss": np.tile(np.repeat(["static", "dynamic"], 5), 2),
                          "step_size": 10 ** rng.normal(-1, 0.2, 20)})
    fig = plotting.plot_step_spread(frame)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [STRATEGY_LABELS["goals"],
                                                            STRATEGY_LABELS["gos-ls"]]
    medians = sorted(line.get_xdata()[0] for line in ax.get_lines() if len(line.get_xdata()) == 2)
    expected = sorted(frame.groupby(["strategy", "mbss"])["step_size"].median())
    assert medians == pytest.approx(expected)


def test_sensitivity_figure_draws_the_median_per_value():
    frame = pd.DataFrame({"strategy": "goals", "constant": ["tolerance"] * 4,
                          "value": [0.5, 0.5, 0.9, 0.9], "default": 0.9, "seed": [0, 1, 0, 1],
                          "final_train_loss": [0.4, 0.6, 0.2, 0.3]})
    fig = plotting.plot_sensitivity(frame)
    line = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == STRATEGY_LABELS["goals"]]
    assert line[0].get_ydata().tolist() == [0.5, 0.25]  # medians per value
