"""Command line: value parsing, run, sweep, reproduce delegation, errors before work."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import types

import pytest
import torch

from goals.cli import main, parse_assignments, parse_value
from goals.paths import repo_root
from goals.records import finished_runs, load_records, records_dir

torch.set_num_threads(1)

TINY = ["model=mlp", "width=0.5", "budget_fe=12", "batch_size=16", "eval_every=6",
        "eval_size=100"]


@pytest.fixture(autouse=True)
def no_progress_bars(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")


def test_parse_value():
    assert parse_value("1e-3") == 0.001  # JSON reads what YAML 1.1 would leave a string
    assert parse_value("3") == 3 and isinstance(parse_value("3"), int)
    assert parse_value("true") is True and parse_value("True") is True
    assert parse_value("null") is None
    assert parse_value("[0, 1]") == [0, 1]
    assert parse_value("sgd") == "sgd" and parse_value("cosine-restarts") == "cosine-restarts"
    assert parse_value("[mlp, cnn]") == ["mlp", "cnn"]


def test_parse_assignments():
    assert parse_assignments(["seed=2", "optimizer.lr=0.5", "optimizer.momentum=0.9"]) == {
        "seed": 2, "optimizer": {"lr": 0.5, "momentum": 0.9}}
    with pytest.raises(ValueError, match="key=value"):
        parse_assignments(["seed"])
    with pytest.raises(ValueError, match="model.width"):
        parse_assignments(["model.width=2"])


def test_run_writes_one_record(tmp_path):
    assert main(["run", *TINY, "strategy=goals", "direction=adam", "--out", str(tmp_path)]) == 0
    runs = load_records(tmp_path)["runs"]
    assert len(runs) == 1
    row = runs.iloc[0]
    assert (row["strategy"], row["direction"], row["status"]) == ("goals", "adam", "ok")
    assert row["fe"] >= 12


def test_run_from_config_file_with_overrides(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("strategy: constant\nbudget_fe: 50\nbatch_size: 16\nwidth: 0.5\n"
                      "optimizer:\n  lr: 0.05\n  momentum: 0.5\n")
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), "budget_fe=10", "optimizer.lr=0.2",
                 "--out", str(out)]) == 0
    (path,) = records_dir(out).glob("*.json")
    record = json.loads(path.read_text())
    assert record["config"]["budget_fe"] == 10 and record["fe"] == 10
    assert record["config"]["optimizer"] == {"lr": 0.2, "momentum": 0.5}
    assert record["trace"]["step_size"][0] == pytest.approx(0.2)


@pytest.mark.parametrize("argv, message", [
    (["run", "learning_rate=0.1"], "unknown configuration field 'learning_rate'"),
    (["run", "budget_fe=ten"], "budget_fe: expected int"),
    (["run", "strategy=goals", "optimizer.lr=0.1"], "optimizer.lr"),
    (["run", "dataset=cifar10", "data_root=/nonexistent/goals"], "cifar-10-batches-py"),
    (["run", "seed"], "key=value"),
    (["sweep", "no-such-profile"], "not found"),
    (["sweep", "tiny", "--set", "colour=red"], "colour"),
])
def test_errors_exit_2_before_work(argv, message, tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "--out", str(tmp_path)]) == 2
    assert message in caplog.text
    assert not records_dir(tmp_path).exists()


def test_run_config_file_errors(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in caplog.text


def test_failed_run_exits_1(tmp_path):
    assert main(["run", *TINY, "batch_size=5000", "--out", str(tmp_path)]) == 1
    assert list(finished_runs(tmp_path).values()) == ["failed"]


def test_sweep_dry_run_and_sweep(tmp_path, caplog):
    out = tmp_path / "tiny"
    with caplog.at_level(logging.INFO):
        assert main(["sweep", "tiny", "--out", str(out), "--dry-run"]) == 0
    assert "33 runs valid" in caplog.text and not records_dir(out).exists()

    assert main(["sweep", "tiny", "--out", str(out), "--set", "budget_fe=10",
                 "eval_every=5"]) == 0
    runs = load_records(out)["runs"]
    assert len(runs) == 33 and set(runs["budget_fe"]) == {10}
    # Running again skips everything.
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(["sweep", "tiny", "--out", str(out), "--set", "budget_fe=10",
                     "eval_every=5"]) == 0
    assert "33 already recorded, 0 run now" in caplog.text


def test_reproduce_is_delegated(monkeypatch):
    received = []
    fake = types.ModuleType("goals.reproduce")
    fake.main = lambda argv: received.append(argv) or 0
    monkeypatch.setitem(sys.modules, "goals.reproduce", fake)
    assert main(["reproduce", "--profile", "tiny"]) == 0
    assert received == [["--profile", "tiny"]]


def test_reproduce_missing_gives_clear_error(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "goals.reproduce", None)
    with caplog.at_level(logging.ERROR):
        assert main(["reproduce"]) == 2
    assert "goals.reproduce is not installed" in caplog.text


def test_python_dash_m_goals(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "goals", "run", *TINY, "strategy=cosine", "--out", str(tmp_path)],
        cwd=repo_root(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "ok after 12 FEs" in result.stderr
    assert len(finished_runs(tmp_path)) == 1


def test_run_help_lists_fields(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run", "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "budget_fe" in text and "eval_every" in text and "optimizer" in text


def write_profile(tmp_path, grid_lines: str, name: str = "mini.yaml"):
    profile = tmp_path / name
    profile.write_text("sweep:\n  out: " + str(tmp_path / "out") + "\n  base:\n"
                       "    model: mlp\n    width: 0.5\n    budget_fe: 12\n    eval_every: 6\n"
                       "    eval_size: 100\n    strategy: constant\n  grid:\n" + grid_lines)
    return profile


def test_sweep_with_failed_run_exits_1_and_rerun_says_so(tmp_path, caplog):
    profile = write_profile(tmp_path, "    batch_size: [16, 5000]\n")
    with caplog.at_level(logging.INFO):
        assert main(["sweep", str(profile)]) == 1
    assert "1 of 2 runs of the sweep failed" in caplog.text
    assert "batch_size" in caplog.text and "--retry-failed" in caplog.text
    assert sorted(finished_runs(tmp_path / "out").values()) == ["failed", "ok"]

    # A rerun skips the failed record, says so, and still exits 1.
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(["sweep", str(profile)]) == 1
    assert "1 recorded runs failed; use --retry-failed to run them again" in caplog.text
    assert "0 run now" in caplog.text


def test_sweep_of_ok_runs_exits_0_with_failed_records_of_other_runs(tmp_path):
    profile = write_profile(tmp_path, "    batch_size: [16, 5000]\n")
    assert main(["sweep", str(profile)]) == 1
    # The same folder, a sweep without the failing run (--set collapses the grid onto the ok
    # run): a failed record of another sweep does not count.
    assert main(["sweep", str(profile), "--set", "batch_size=16"]) == 0
    only_ok = write_profile(tmp_path, "    batch_size: [16]\n", name="ok.yaml")
    assert main(["sweep", str(only_ok)]) == 0


def test_diverged_runs_do_not_fail_the_sweep(tmp_path, caplog):
    profile = write_profile(tmp_path, "    seed: [0]\n")
    with caplog.at_level(logging.INFO):
        assert main(["sweep", str(profile), "--set", "optimizer.lr=1.0e6"]) == 0
    assert list(finished_runs(tmp_path / "out").values()) == ["diverged"]


@pytest.mark.parametrize("argv", [
    ["run", *TINY, "device=cuda"],
    ["sweep", "tiny", "--set", "device=cuda"],
    ["sweep", "tiny", "--set", "device=cuda:0", "--dry-run"],
])
def test_missing_cuda_is_rejected_before_work(argv, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "--out", str(tmp_path)]) == 2
    assert "device:" in caplog.text and "no CUDA device; use device: cpu" in caplog.text
    assert not records_dir(tmp_path).exists()


def test_yaml_number_strings_in_config_file_rejected_before_work(tmp_path, caplog):
    config = tmp_path / "run.yaml"
    config.write_text("strategy: constant\noptimizer:\n  lr: 1e-3\n")
    with caplog.at_level(logging.ERROR):
        assert main(["run", "--config", str(config), "--out", str(tmp_path)]) == 2
    assert "optimizer.lr: '1e-3'" in caplog.text and "write 1.0e-3" in caplog.text
    assert not records_dir(tmp_path).exists()

    profile = write_profile(tmp_path, "    seed: [1e-3]\n")
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(["sweep", str(profile), "--dry-run"]) == 2
    assert "seed: '1e-3'" in caplog.text and "write 1.0e-3" in caplog.text


BAD_YAML = "sweep:\n  base:\n    model: mlp\n   width: 2\n"


@pytest.mark.parametrize("kind", ["profile", "config", "assignment", "set"])
def test_malformed_yaml_is_one_clear_line(kind, tmp_path, caplog):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_YAML)
    argv = {"profile": ["sweep", str(bad)],
            "config": ["run", "--config", str(bad)],
            "assignment": ["run", "seed=[1, 2"],
            "set": ["sweep", "tiny", "--set", "seed=a: b: c"]}[kind]
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "invalid YAML" in lines[0] and "line " in lines[0]
    if kind in ("profile", "config"):
        assert str(bad) in lines[0] and "line 4" in lines[0]
    assert not (tmp_path / "out").exists()


def test_malformed_profile_from_the_shell_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_YAML)
    result = subprocess.run([sys.executable, "-m", "goals", "sweep", str(bad)], cwd=repo_root(),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"ERROR goals.cli: {bad}, line 4, column 4: invalid YAML: ")


@pytest.mark.parametrize("workers", ["0", "-2"])
@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_nonpositive_workers_rejected_before_work(workers, dry_run, tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert main(["sweep", "tiny", "--workers", workers, *dry_run,
                     "--out", str(tmp_path)]) == 2
    assert f"--workers: expected a positive integer or null, got {workers}" in caplog.text
    assert not records_dir(tmp_path).exists()


def test_profile_workers_and_executor_checked_before_work(tmp_path, caplog):
    profile = write_profile(tmp_path, "    seed: [0]\n")
    profile.write_text(profile.read_text() + "  workers: 0\n")
    with caplog.at_level(logging.ERROR):
        assert main(["sweep", str(profile), "--dry-run"]) == 2
    assert "sweep.workers: expected a positive integer" in caplog.text
    profile.write_text(profile.read_text().replace("workers: 0", "executor: threads"))
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(["sweep", str(profile), "--dry-run"]) == 2
    assert "sweep.executor: 'threads'" in caplog.text
