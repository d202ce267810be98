"""Hand-computed tables for the relative robust criterion (one test per rule of goals.robust)."""

from __future__ import annotations

import logging
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from goals import robust  # noqa: E402

INF = math.inf
NAN = math.nan
P1 = ("digits", "mlp", "sgd")
P2 = ("digits", "cnn", "sgd")
P3 = ("digits", "mlp", "adam")


def make_runs(rows: list[tuple], metric: str = "final_train_loss") -> pd.DataFrame:
    """Rows ``(problem, strategy, seed, value[, status])`` -> a tidy ``runs`` frame."""
    records = []
    for row in rows:
        problem, strategy, seed, value = row[:4]
        status = row[4] if len(row) > 4 else "ok"
        dataset, model, direction = problem
        records.append({"run_id": f"{problem}-{strategy}-{seed}", "dataset": dataset,
                        "model": model, "direction": direction, "strategy": strategy,
                        "seed": seed, "status": status, metric: value})
    return pd.DataFrame(records)


def medians(table: dict[tuple, dict[str, float]]) -> pd.DataFrame:
    """One run per cell (so the median is the value): ``{problem: {strategy: value}}``."""
    rows = []
    for problem, cells in table.items():
        for strategy, value in cells.items():
            status = "diverged" if value == INF else "ok"
            rows.append((problem, strategy, 0, value, status))
    return make_runs(rows)


def deviations(runs: pd.DataFrame, **kwargs) -> pd.DataFrame:
    return robust.relative_deviations(robust.aggregate(runs, "final_train_loss"), **kwargs)


def cell(frame: pd.DataFrame, problem: tuple, strategy: str) -> pd.Series:
    mask = ((frame["dataset"] == problem[0]) & (frame["model"] == problem[1])
            & (frame["direction"] == problem[2]) & (frame["strategy"] == strategy))
    assert mask.sum() == 1
    return frame[mask].iloc[0]


# Rules 1 and 2: failed runs are left out, diverged runs are +inf inside the median ----------


def test_aggregate_median_spread_failed_and_diverged():
    runs = make_runs([
        (P1, "goals", 0, 1.0), (P1, "goals", 1, 3.0), (P1, "goals", 2, 2.0),
        # NaN metric on an "ok" run counts as diverged; the failed run is left out.
        (P1, "gos-ls", 0, 1.0), (P1, "gos-ls", 1, NAN), (P1, "gos-ls", 2, 5.0, "failed"),
        # status "diverged" wins over the finite number recorded after divergence.
        (P1, "constant", 0, 2.0), (P1, "constant", 1, 4.0), (P1, "constant", 2, 0.5, "diverged"),
        (P1, "cosine", 0, 1.0, "failed"), (P1, "cosine", 1, 1.0, "failed"),
    ])
    agg = robust.aggregate(runs, "final_train_loss")

    goals = cell(agg, P1, "goals")
    assert (goals["median"], goals["min"], goals["max"]) == (2.0, 1.0, 3.0)
    assert (goals["q25"], goals["q75"], goals["iqr"]) == (1.5, 2.5, 1.0)
    assert goals["std_finite"] == pytest.approx(1.0)
    assert (goals["n_seeds"], goals["n_diverged"], goals["n_failed"]) == (3, 0, 0)

    # [1, inf]: the upper middle value is inf, so the median is inf (half the seeds diverged).
    gos = cell(agg, P1, "gos-ls")
    assert gos["median"] == INF and gos["min"] == 1.0 and gos["max"] == INF
    assert (gos["n_seeds"], gos["n_diverged"], gos["n_failed"]) == (2, 1, 1)

    # [2, 4, inf]: median 4; q25 = 3 (between 2 and 4); q75 between 4 and inf is inf.
    const = cell(agg, P1, "constant")
    assert const["median"] == 4.0 and const["q25"] == 3.0
    assert const["q75"] == INF and const["iqr"] == INF
    assert const["std_finite"] == pytest.approx(math.sqrt(2.0))
    assert not any(np.isnan(const[["median", "min", "q25", "q75", "max", "iqr"]].astype(float)))

    cosine = cell(agg, P1, "cosine")
    assert cosine["n_seeds"] == 0 and cosine["n_failed"] == 2 and math.isnan(cosine["median"])


def test_failed_runs_excluded_by_default_or_counted_as_diverged():
    runs = make_runs([
        (P1, "goals", 0, 1.0), (P1, "goals", 1, 2.0), (P1, "goals", 2, 0.1, "failed"),
        (P1, "gos-ls", 0, 1.5), (P1, "gos-ls", 1, 1.5), (P1, "gos-ls", 2, 1.5),
    ])
    # Excluded: goals median of [1, 2] = 1.5, a tie with gos-ls; the failure stays visible.
    ranking = robust.rank_strategies(runs, "final_train_loss")
    assert ranking["R"].to_dict() == {"goals": 0.0, "gos-ls": 0.0}
    assert ranking["n_failed"].to_dict() == {"goals": 1, "gos-ls": 0}

    # Counted as diverged: goals median of [1, 2, inf] = 2 -> RD = 0.5 / 1.5.
    ranking = robust.rank_strategies(runs, "final_train_loss", failed="diverged")
    assert ranking.loc["goals", "R"] == pytest.approx(1.0 / 3.0)
    assert ranking["rank"].to_dict() == {"gos-ls": 1, "goals": 2}
    agg = robust.aggregate(runs, "final_train_loss", failed="diverged")
    assert cell(agg, P1, "goals")[["n_seeds", "n_diverged", "n_failed"]].tolist() == [3, 1, 1]
    with pytest.raises(ValueError, match="failed"):
        robust.aggregate(runs, "final_train_loss", failed="drop")


def test_per_seed_values_status_and_negative_metric():
    runs = make_runs([(P1, "goals", 0, 0.3), (P1, "goals", 1, INF),
                      (P1, "goals", 2, 0.1, "failed")])
    seeds = robust.per_seed_values(runs, "final_train_loss")
    assert seeds["status"].tolist() == ["ok", "diverged", "failed"]
    assert seeds["value"].iloc[0] == 0.3 and seeds["value"].iloc[1] == INF
    assert math.isnan(seeds["value"].iloc[2])

    with pytest.raises(ValueError, match="negative"):
        robust.per_seed_values(make_runs([(P1, "goals", 0, -0.1)]), "final_train_loss")
    with pytest.raises(KeyError, match="final_test_error"):
        robust.per_seed_values(runs, "final_test_error")
    with pytest.raises(ValueError, match="no rows"):
        robust.aggregate(runs.iloc[:0], "final_train_loss")


# Rule 3: a best value of zero divides by the floor --------------------------------------------


def test_zero_best_uses_floor():
    runs = medians({
        P1: {"goals": 0.0, "gos-ls": 0.01, "constant": 0.0},
        P2: {"goals": 0.5, "gos-ls": 1.0, "constant": 0.75},
    })
    dev = deviations(runs)
    assert cell(dev, P1, "gos-ls")["rd"] == pytest.approx(0.01 / 1e-6)
    assert bool(cell(dev, P1, "gos-ls")["floored"]) and not bool(cell(dev, P2, "goals")["floored"])
    assert cell(dev, P1, "goals")["rd"] == 0.0 and cell(dev, P1, "constant")["rd"] == 0.0
    assert bool(cell(dev, P1, "goals")["is_best"]) and bool(cell(dev, P1, "constant")["is_best"])
    # Best strategy has ratio 1 even when f* = 0.
    assert cell(dev, P1, "goals")["ratio"] == 1.0

    dev = deviations(runs, zero_floor=0.01)
    assert cell(dev, P1, "gos-ls")["rd"] == pytest.approx(1.0)
    assert cell(dev, P1, "gos-ls")["ratio"] == pytest.approx(2.0)
    # Unfloored problem: the paper's formula, ratio f / f*.
    assert cell(dev, P2, "gos-ls")["rd"] == 1.0 and cell(dev, P2, "gos-ls")["ratio"] == 2.0
    assert cell(dev, P2, "constant")["rd"] == 0.5

    ranking = robust.robust_ranking(dev)
    # goals: max(0, 0) = 0; constant: max(0, 0.5); gos-ls: max(1, 1).
    assert ranking.loc["goals", "R"] == 0.0
    assert ranking.loc["constant", "R"] == 0.5
    assert ranking.loc["gos-ls", "R"] == pytest.approx(1.0)
    assert ranking["rank"].to_dict() == {"goals": 1, "constant": 2, "gos-ls": 3}

    with pytest.raises(ValueError, match="zero_floor"):
        deviations(runs, zero_floor=0.0)


# Rule 4: a diverged median gives RD = inf, R = inf ------------------------------------------


def test_diverged_strategy_has_infinite_criterion(tmp_path):
    runs = medians({
        P1: {"goals": 1.0, "gos-ls": 2.0, "constant-x10": INF},
        P2: {"goals": 1.5, "gos-ls": 1.0, "constant-x10": 1.5},
    })
    dev = deviations(runs)
    assert cell(dev, P1, "constant-x10")["rd"] == INF
    assert cell(dev, P1, "constant-x10")["state"] == "diverged"
    ranking = robust.robust_ranking(dev)

    assert ranking.loc["goals", "R"] == 0.5 and ranking.loc["goals", "mean_rd"] == 0.25
    assert ranking.loc["gos-ls", "R"] == 1.0 and ranking.loc["gos-ls", "mean_rd"] == 0.5
    assert ranking.loc["constant-x10", "R"] == INF and ranking.loc["constant-x10", "mean_rd"] == INF
    assert ranking.loc["constant-x10", "n_diverged"] == 1
    assert ranking.loc["constant-x10", "worst_problem"] == "digits/mlp/sgd"
    assert list(ranking.index) == ["goals", "gos-ls", "constant-x10"]
    assert ranking["rank"].tolist() == [1, 2, 3]

    from goals.tables import write_table

    paths = write_table(ranking, tmp_path / "ranking", "test")
    assert "diverged" in paths["md"].read_text() and "diverged" in paths["tex"].read_text()


def test_diverged_strategies_share_rank():
    runs = medians({P1: {"goals": 1.0, "constant-x10": INF, "cosine": INF, "constant": 3.0}})
    ranking = robust.robust_ranking(deviations(runs))
    assert ranking["rank"].to_dict() == {"goals": 1, "constant": 2, "constant-x10": 3,
                                         "cosine": 3}


# Rule 5: missing runs ------------------------------------------------------------------------


def test_missing_runs_never_look_good():
    runs = medians({
        P1: {"goals": 1.0, "gos-ls": 2.0, "cosine": 1.5, "constant-x10": INF},
        P2: {"goals": 2.0, "gos-ls": 1.0},
    })
    # A cell with only failed runs is missing too; its value must not lower f*(P2).
    runs = pd.concat([runs, make_runs([(P2, "cosine", 0, 0.01, "failed")])], ignore_index=True)
    dev = deviations(runs, strategies=["goals", "gos-ls", "cosine", "constant-x10", "step-decay"])

    assert cell(dev, P2, "goals")["best"] == 1.0
    assert math.isnan(cell(dev, P2, "cosine")["rd"])
    assert cell(dev, P2, "cosine")["state"] == "missing"
    ranking = robust.robust_ranking(dev)

    # cosine: RD 0.5 on P1, missing on P2 -> worst case unknown -> NaN, ranked last.
    assert math.isnan(ranking.loc["cosine", "R"]) and ranking.loc["cosine", "n_missing"] == 1
    # constant-x10: diverged on P1, missing on P2 -> worst case known: inf.
    assert ranking.loc["constant-x10", "R"] == INF
    # step-decay: no runs at all -> missing everywhere.
    assert ranking.loc["step-decay", "n_missing"] == 2
    assert ranking["rank"].to_dict() == {"goals": 1, "gos-ls": 1, "constant-x10": 3,
                                         "cosine": 4, "step-decay": 4}
    assert ranking["n_problems"].unique().tolist() == [2]

    # In the profile a missing problem is never solved.
    profile = robust.performance_profile(dev, taus=[1.0, 1.5, 100.0])
    cosine = profile[profile["strategy"] == "cosine"].set_index("tau")["rho"]
    assert cosine.to_dict() == {1.0: 0.0, 1.5: 0.5, 100.0: 0.5}


# Rule 6: ties ---------------------------------------------------------------------------------


def test_ties_count_best_for_all_and_share_rank():
    runs = medians({
        P1: {"goals": 1.0, "gos-ls": 1.0, "gols-i": 1.0, "constant": 2.0},
        P2: {"goals": 1.0, "gos-ls": 1.0, "gols-i": 1.5, "constant": 1.0},
    })
    ranking = robust.robust_ranking(deviations(runs))
    assert ranking["n_best"].to_dict() == {"goals": 2, "gos-ls": 2, "gols-i": 1, "constant": 1}
    assert ranking["R"].to_dict() == {"goals": 0.0, "gos-ls": 0.0, "gols-i": 0.5, "constant": 1.0}
    assert ranking["rank"].to_dict() == {"goals": 1, "gos-ls": 1, "gols-i": 3, "constant": 4}
    sentence = robust.describe_rank(ranking, "goals")
    assert "1st of 4" in sentence and "tied with GOS-LS" in sentence

    # Three-way tie: all three share rank 1 ("min"), the next is 4th.
    runs = medians({P1: {"goals": 1.0, "gos-ls": 1.0, "gols-i": 1.0, "constant": 2.0}})
    ranking = robust.robust_ranking(deviations(runs))
    assert ranking["rank"].to_dict() == {"goals": 1, "gos-ls": 1, "gols-i": 1, "constant": 4}


# Rule 7: a problem where every strategy diverged ----------------------------------------------


def test_problem_with_every_strategy_diverged_is_dropped(caplog):
    runs = medians({
        P1: {"goals": 1.0, "gos-ls": 2.0},
        P2: {"goals": INF, "gos-ls": INF},
    })
    runs = pd.concat([runs, make_runs([(P3, "goals", 0, 1.0, "failed")])], ignore_index=True)
    with caplog.at_level(logging.WARNING, logger="goals.robust"):
        dev = deviations(runs)
    assert "digits/cnn/sgd" in caplog.text and "every strategy diverged" in caplog.text

    dropped = robust.dropped_problems(dev)
    assert dropped[["model", "direction", "reason"]].values.tolist() == [
        ["cnn", "sgd", "every strategy diverged"], ["mlp", "adam", "no usable runs"]]

    ranking = robust.robust_ranking(dev)
    assert ranking["n_problems"].tolist() == [1, 1]
    assert ranking.loc["goals", "R"] == 0.0 and ranking.loc["gos-ls", "R"] == 1.0
    assert ranking["n_diverged"].tolist() == [0, 0]

    profile = robust.performance_profile(dev, taus=[1.0, 2.0])
    gos = profile[profile["strategy"] == "gos-ls"]["rho"].tolist()
    assert gos == [0.0, 1.0]


# Performance profile --------------------------------------------------------------------------


def test_performance_profile_values():
    runs = medians({
        P1: {"goals": 1.0, "gos-ls": 2.0},
        P2: {"goals": 3.0, "gos-ls": 1.0},
        P3: {"goals": 1.0, "gos-ls": 1.0},
    })
    dev = deviations(runs)
    profile = robust.performance_profile(dev, taus=[1.0, 1.999, 2.0, 2.999, 3.0])
    rho = profile.pivot(index="tau", columns="strategy", values="rho")
    third = 1.0 / 3.0
    assert rho["goals"].tolist() == pytest.approx([2 * third, 2 * third, 2 * third, 2 * third, 1.0])
    assert rho["gos-ls"].tolist() == pytest.approx([2 * third, 2 * third, 1.0, 1.0, 1.0])

    # The default grid starts at 1, holds every finite ratio exactly and is non-decreasing.
    default = robust.performance_profile(dev)
    goals = default[default["strategy"] == "goals"]
    assert goals["tau"].min() == 1.0 and 3.0 in goals["tau"].tolist()
    assert np.all(np.diff(goals["rho"].to_numpy()) >= 0) and goals["rho"].iloc[-1] == 1.0


def test_plot_performance_profile_uses_palette_and_given_axes():
    runs = medians({P1: {"goals": 1.0, "gos-ls": 2.0}, P2: {"goals": 3.0, "gos-ls": 1.0}})
    profile = robust.performance_profile(robust.relative_deviations(
        robust.aggregate(runs, "final_train_loss")))
    fig, ax = plt.subplots()
    palette = {"goals": {"color": "#ff0000", "marker": "s"}, "gos-ls": "#00ff00"}
    out = robust.plot_performance_profile(profile, ax, palette=palette)
    assert out is ax
    colours = [matplotlib.colors.to_hex(line.get_color()) for line in ax.get_lines()]
    assert colours == ["#ff0000", "#00ff00"]
    assert ax.get_lines()[0].get_marker() == "s"
    assert ax.get_xscale() == "log"
    plt.close(fig)


# Per-direction ranking -------------------------------------------------------------------------


def test_rank_by_direction():
    sgd_mlp, sgd_cnn = ("digits", "mlp", "sgd"), ("digits", "cnn", "sgd")
    adam_mlp, adam_cnn = ("digits", "mlp", "adam"), ("digits", "cnn", "adam")
    runs = medians({
        sgd_mlp: {"goals": 1.0, "constant": 2.0},
        sgd_cnn: {"goals": 1.0, "constant": 1.5},
        adam_mlp: {"goals": 3.0, "constant": 1.0},
        adam_cnn: {"goals": 2.0, "constant": 1.0},
    })
    dev = deviations(runs)
    overall = robust.robust_ranking(dev)
    # goals: max(0, 0, 2, 1) = 2; constant: max(1, 0.5, 0, 0) = 1.
    assert overall["R"].to_dict() == {"constant": 1.0, "goals": 2.0}

    by_direction = robust.rank_by_direction(dev)
    assert by_direction["direction"].unique().tolist() == ["sgd", "adam"]
    sgd = by_direction[by_direction["direction"] == "sgd"].set_index("strategy")
    adam = by_direction[by_direction["direction"] == "adam"].set_index("strategy")
    assert sgd["R"].to_dict() == {"goals": 0.0, "constant": 1.0}
    assert sgd["rank"].to_dict() == {"goals": 1, "constant": 2}
    assert adam["R"].to_dict() == {"constant": 0.0, "goals": 2.0}
    assert adam["rank"].to_dict() == {"constant": 1, "goals": 2}
    assert sgd["n_problems"].unique().tolist() == [2]

    wide = robust.direction_table(by_direction)
    assert wide.loc["goals", "sgd rank"] == 1 and wide.loc["goals", "adam rank"] == 2
    assert wide.loc["constant", "adam R"] == 0.0


# Per-seed view and modes -------------------------------------------------------------------------


def test_detect_modes():
    runs = make_runs(
        [(P1, "goals", s, v) for s, v in enumerate([1.0, 1.05, 1.1, 5.0, 5.1])]
        + [(P1, "gos-ls", s, v) for s, v in enumerate([1.0, 2.0, 3.0, 4.5, 5.5])]
        + [(P1, "constant", s, v) for s, v in enumerate([1.0, 1.0, 1.001])]
        + [(P1, "cosine", s, v) for s, v in enumerate([1.0, 3.0])]
        + [(P1, "step-decay", 0, 1.0), (P1, "step-decay", 1, 1.02),
           (P1, "step-decay", 2, 0.3, "diverged")]
    )
    modes = robust.detect_modes(robust.per_seed_values(runs, "final_train_loss"))
    modes = modes.set_index("strategy")

    # Gap 3.9 between {1, 1.05, 1.1} and {5, 5.1}; within-group range 0.1.
    assert modes.loc["goals", "gap"] == pytest.approx(3.9)
    assert modes.loc["goals", "within"] == pytest.approx(0.1)
    assert modes.loc["goals", "separated"] is True
    assert (modes.loc["goals", "n_low"], modes.loc["goals", "n_high"]) == (3, 2)
    # Spread-out seeds: the largest gap 1.5 (3 -> 4.5) is large relative to the median 3 but
    # smaller than 3 x the within-group range 2.
    assert modes.loc["gos-ls", "gap"] == pytest.approx(1.5)
    assert modes.loc["gos-ls", "within"] == pytest.approx(2.0)
    assert modes.loc["gos-ls", "separated"] is False
    # Zero within-group range but a gap of 0.1 % of the value: not a mode.
    assert modes.loc["constant", "separated"] is False
    # Two seeds cannot tell.
    assert pd.isna(modes.loc["cosine", "separated"])
    # Some but not all seeds diverged.
    assert bool(modes.loc["step-decay", "diverged_split"])
    assert not bool(modes.loc["goals", "diverged_split"])


def test_plot_per_seed_makes_one_panel_per_problem():
    runs = make_runs([(P1, "goals", 0, 1.0), (P1, "goals", 1, INF), (P2, "gos-ls", 0, 2.0),
                      (P3, "goals", 0, 0.5)])
    fig = robust.plot_per_seed(robust.per_seed_values(runs, "final_train_loss"), ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["digits/cnn/sgd", "digits/mlp/sgd",
                                                  "digits/mlp/adam"]
    plt.close(fig)


# Sentence and the full report ------------------------------------------------------------------


def test_describe_rank_reads_the_data():
    table = {P1: {"goals": 1.0, "gos-ls": 2.0, "constant": 4.0}}
    ranking = robust.rank_strategies(medians(table), "final_train_loss")
    assert robust.describe_rank(ranking, "gos-ls").startswith("GOS-LS ranks 2nd of 3")
    assert "R = 1" in robust.describe_rank(ranking, "gos-ls")
    assert "final training loss" in robust.describe_rank(ranking, "gos-ls")

    table[P1]["gos-ls"] = 0.5
    ranking = robust.rank_strategies(medians(table), "final_train_loss")
    assert robust.describe_rank(ranking, "gos-ls").startswith("GOS-LS ranks 1st of 3")
    assert "GOALS (GOS-LSC) ranks 2nd" in robust.describe_rank(ranking, "goals")
    assert "no runs" in robust.describe_rank(ranking, "cosine")

    table[P1]["goals"] = INF
    ranking = robust.rank_strategies(medians(table), "final_train_loss")
    assert "infinite" in robust.describe_rank(ranking, "goals")


def test_robustness_report_writes_tables_and_figure(tmp_path):
    rows = []
    for problem, shift in ((P1, 0.0), (P3, 0.2)):
        for strategy, base in (("goals", 0.1), ("gos-ls", 0.2), ("constant-x10", 0.3)):
            for seed in (0, 1):
                rows.append({"dataset": problem[0], "model": problem[1], "direction": problem[2],
                             "strategy": strategy, "seed": seed, "status": "ok",
                             "final_train_loss": base + shift + 0.01 * seed,
                             "final_test_error": 0.0 if strategy == "goals" else 0.05 + seed / 100})
    runs = pd.DataFrame(rows)
    runs.loc[(runs["strategy"] == "constant-x10") & (runs["direction"] == "adam"), "status"] = (
        "diverged")

    tables = robust.robustness_report(runs, tmp_path, provenance_extra={"profile": "test"})
    for name in ("ranking_train", "ranking_test", "directions_train", "rd_test", "dropped_train",
                 "modes_train", "aggregate_test", "profile_train", "per_seed_test"):
        assert name in tables
    for suffix in ("csv", "json", "md", "tex"):
        assert (tmp_path / f"ranking_train.{suffix}").exists()
    for suffix in ("pdf", "png"):
        assert (tmp_path / f"performance_profile.{suffix}").stat().st_size > 1000
        assert (tmp_path / f"per_seed_test.{suffix}").exists()
    assert "\\toprule" in (tmp_path / "ranking_train.tex").read_text()
    assert "diverged" in (tmp_path / "ranking_train.md").read_text()
    assert "profile=test" in (tmp_path / "ranking_train.md").read_text()
    assert tables["ranking_train"].loc["constant-x10", "R"] == INF
    # Test error 0 for goals: floored; gos-ls median over seeds 0.05, 0.06 is 0.055.
    assert tables["ranking_test"].loc["goals", "rank"] == 1
    assert tables["ranking_test"].loc["gos-ls", "R"] == pytest.approx(0.055 / robust.ZERO_FLOOR)


def test_describe_directions_names_the_first_per_direction():
    runs = medians({
        ("digits", "mlp", "sgd"): {"goals": 1.0, "constant": 2.0, "cosine": 1.0},
        ("digits", "mlp", "adam"): {"goals": 3.0, "constant": 1.0, "cosine": 2.0},
    })
    text = robust.describe_directions(robust.rank_by_direction(deviations(runs)))
    assert "With SGD directions, GOALS (GOS-LSC) and Cosine rank first" in text
    assert "With Adam directions, Constant ranks first" in text
    assert "final training loss" in text


# Rule 8: nothing to rank, failed runs always counted ----------------------------------------


def failed_runs_frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows ``(problem, strategy, seed, status)``: both paper metrics, and an error text on
    every failed run (a traceback whose first line names the cause)."""
    records = []
    for problem, strategy, seed, status in rows:
        failed = status == "failed"
        records.append({
            "run_id": f"{problem[0]}-{problem[1]}-{problem[2]}-{strategy}-{seed}",
            "dataset": problem[0], "model": problem[1], "direction": problem[2],
            "strategy": strategy, "seed": seed, "status": status,
            "final_train_loss": NAN if failed else 0.1 * (seed + 1),
            "final_test_error": NAN if failed else 0.2,
            "error": (f"OSError: image {seed} of {strategy} is corrupt\nTraceback (most recent "
                      "call last):\n  File x.py" if failed else None),
        })
    return pd.DataFrame(records)


def test_all_failed_runs_raise_instead_of_a_ranking(tmp_path):
    rows = [(P1, strategy, seed, "failed")
            for strategy in ("goals", "gos-ls", "constant") for seed in (0, 1)]
    runs = failed_runs_frame(rows)

    with pytest.raises(robust.NoUsableRunsError) as caught:
        robust.robustness_report(runs, tmp_path / "report")
    message = str(caught.value)
    assert "6 of 6 runs failed and 0 diverged" in message
    assert "OSError: image 0 of goals is corrupt" in message
    assert "Traceback" not in message  # only the first line of the error text
    assert "retry_failed=True" in message
    assert "1 no usable runs" in message
    assert not (tmp_path / "report").exists()  # nothing that looks like a result is written

    with pytest.raises(robust.NoUsableRunsError, match="6 of 6 runs failed"):
        robust.rank_strategies(runs, "final_train_loss")
    dev = robust.relative_deviations(robust.aggregate(runs, "final_train_loss"))
    with pytest.raises(robust.NoUsableRunsError, match="6 failed run"):
        robust.robust_ranking(dev)
    with pytest.raises(robust.NoUsableRunsError):
        robust.rank_by_direction(dev)
    # Still a ValueError for callers that caught the old error.
    assert issubclass(robust.NoUsableRunsError, ValueError)


def test_all_diverged_or_no_runs_raise_too():
    runs = failed_runs_frame([(P1, "goals", 0, "diverged"), (P1, "gos-ls", 0, "diverged")])
    with pytest.raises(robust.NoUsableRunsError, match="0 of 2 runs failed and 2 diverged"):
        robust.rank_strategies(runs, "final_train_loss")
    with pytest.raises(robust.NoUsableRunsError, match="No run is recorded: run the sweep"):
        robust.rank_strategies(runs.iloc[:0], "final_train_loss")


def test_partly_failed_runs_are_counted_and_the_all_failed_strategy_is_not_ranked():
    rows = [(P1, "goals", 0, "ok"), (P1, "goals", 1, "ok"),
            (P1, "gos-ls", 0, "ok"), (P1, "gos-ls", 1, "failed"),
            (P1, "constant", 0, "failed"), (P1, "constant", 1, "failed")]
    # P3 (adam): every run failed, so that problem (and direction) is dropped.
    rows += [(P3, strategy, 0, "failed") for strategy in ("goals", "gos-ls", "constant")]
    runs = failed_runs_frame(rows)

    ranking = robust.rank_strategies(runs, "final_train_loss")
    # goals median 0.15, gos-ls 0.1 (its failed seed left out): gos-ls best, constant missing.
    assert ranking["rank"].to_dict() == {"gos-ls": 1, "goals": 2, "constant": 3}
    assert ranking.loc["goals", "R"] == pytest.approx(0.5)
    assert math.isnan(ranking.loc["constant", "R"])
    assert set(ranking["n_problems"]) == {1}
    # Failed runs on the dropped problem P3 are counted too.
    assert ranking["n_failed"].to_dict() == {"gos-ls": 2, "goals": 1, "constant": 3}

    sentence = robust.describe_rank(ranking, "constant")
    assert "Constant could not be ranked" in sentence and "3 failed run(s)" in sentence
    assert "ranks" not in sentence
    assert "ranks 2nd of 3" in robust.describe_rank(ranking, "goals")

    dev = robust.relative_deviations(robust.aggregate(runs, "final_train_loss"))
    by_direction = robust.rank_by_direction(dev)
    assert set(by_direction["direction"]) == {"sgd"}  # adam has nothing to rank: left out


def test_failed_run_table_and_require_evaluations():
    runs = failed_runs_frame([(P1, "goals", 0, "ok"), (P1, "gos-ls", 3, "failed"),
                              (P1, "constant", 1, "diverged")])
    table = robust.failed_run_table(runs)
    assert list(table.columns) == ["dataset", "model", "direction", "strategy", "seed", "status",
                                   "error"]
    assert table["strategy"].tolist() == ["gos-ls", "constant"]
    assert table["error"].tolist() == ["OSError: image 3 of gos-ls is corrupt", ""]

    evals = pd.DataFrame({"run_id": [runs["run_id"].iloc[0]], "fe": [10]})
    assert robust.require_evaluations(runs, evals).equals(table)
    assert robust.require_evaluations(runs.iloc[:1], evals).empty

    with pytest.raises(robust.NoUsableRunsError) as caught:
        robust.require_evaluations(runs, evals.iloc[:0])
    message = str(caught.value)
    assert "No run has evaluations" in message
    assert "1 of 3 runs failed and 1 diverged" in message
    assert "OSError: image 3 of gos-ls is corrupt" in message and "retry_failed=True" in message
    with pytest.raises(robust.NoUsableRunsError, match="No run is recorded"):
        robust.require_evaluations(runs.iloc[:0], evals.iloc[:0])
