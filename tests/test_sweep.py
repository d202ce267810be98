"""Sweeps: grids, resume after a kill, failures, validation first, executors, profiles."""

from __future__ import annotations

import json
import os

import pytest
import torch

from goals import sweep as sweep_module
from goals.data import DataNotFoundError
from goals.labels import DIRECTIONS, STRATEGIES
from goals.records import finished_runs, load_records, record_path, records_dir, run_id
from goals.runs import ConfigError
from goals.sweep import (
    SweepError,
    expand_grid,
    prepare,
    profile_configs,
    profile_out_dir,
    read_manifest,
    run_sweep,
    sweep_profile,
    sweep_section,
)

torch.set_num_threads(1)

BASE = {"dataset": "digits", "model": "mlp", "width": 0.5, "budget_fe": 12, "batch_size": 16,
        "eval_every": 6, "eval_size": 100, "threads": 1}


@pytest.fixture(autouse=True)
def no_progress_bars(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")


def six_configs():
    return expand_grid(BASE, {"strategy": ["goals", "constant", "cosine"], "seed": [0, 1]})


def snapshot(out_dir):
    return {path.name: path.read_bytes() for path in records_dir(out_dir).glob("*.json")}


# --- grids --------------------------------------------------------------------------------------


def test_expand_grid_crosses_in_key_order():
    configs = expand_grid({"budget_fe": 5}, {"model": ["mlp", "cnn"], "seed": [0, 1, 2]})
    assert len(configs) == 6
    assert [(c["model"], c["seed"]) for c in configs[:4]] == [("mlp", 0), ("mlp", 1), ("mlp", 2),
                                                             ("cnn", 0)]
    assert all(c["budget_fe"] == 5 for c in configs)
    assert expand_grid({"seed": 3}, {}) == [{"seed": 3}]


@pytest.mark.parametrize("base, grid, match", [
    ({"colour": 1}, {}, "sweep.base.colour"),
    ({}, {"models": ["mlp"]}, "sweep.grid.models"),
    ({"seed": 0}, {"seed": [1]}, "sweep.grid.seed"),
    ({}, {"seed": []}, "non-empty list"),
    ({}, {"seed": 3}, "non-empty list"),
])
def test_expand_grid_errors(base, grid, match):
    with pytest.raises(SweepError, match=match):
        expand_grid(base, grid)


def test_prepare_removes_duplicates_and_validates_all_first():
    prepared = prepare(six_configs() + six_configs()[:2])
    assert len(prepared) == 6
    assert [rid for rid, _ in prepared] == [run_id(c) for c in six_configs()]
    bad = six_configs() + [dict(BASE, budget_fe="ten")]
    with pytest.raises(ConfigError, match="run 6 of the sweep: budget_fe"):
        prepare(bad)


# --- running, resuming, failures ----------------------------------------------------------------


def test_sweep_writes_records_and_manifest_and_skips_finished(tmp_path):
    summary = run_sweep(six_configs(), tmp_path)
    assert summary["total"] == summary["ran"] == 6 and summary["skipped"] == 0
    assert summary["statuses"] == {"ok": 6}
    manifest = read_manifest(tmp_path)
    assert manifest["run_ids"] == [run_id(c) for c in six_configs()]
    assert set(finished_runs(tmp_path)) == set(manifest["run_ids"])
    before = snapshot(tmp_path)

    again = run_sweep(six_configs(), tmp_path)
    assert again["ran"] == 0 and again["skipped"] == 6
    assert snapshot(tmp_path) == before


def test_killed_sweep_resumes_without_loss_or_duplicates(tmp_path, monkeypatch):
    configs = six_configs()
    real_run_one = sweep_module.run_one
    calls = []

    def killed_on_fourth(config):
        calls.append(config)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the user presses Ctrl-C during the fourth run
        return real_run_one(config)

    monkeypatch.setattr(sweep_module, "run_one", killed_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, tmp_path)
    done_before = snapshot(tmp_path)
    assert len(done_before) == 3

    # What a kill during a write leaves behind: a temporary file and a truncated record.
    ids = [run_id(c) for c in configs]
    folder = records_dir(tmp_path)
    (folder / f".{ids[3]}.json.999.tmp").write_text('{"run_id": "')
    record_path(tmp_path, ids[4]).write_text('{"run_id": "' + ids[4] + '", "sta')

    monkeypatch.setattr(sweep_module, "run_one", real_run_one)
    summary = run_sweep(configs, tmp_path)
    assert summary["skipped"] == 3 and summary["ran"] == 3
    after = snapshot(tmp_path)
    assert sorted(after) == sorted(f"{rid}.json" for rid in ids)
    assert {name: after[name] for name in done_before} == done_before  # finished runs untouched
    runs = load_records(tmp_path)["runs"]
    assert sorted(runs["run_id"]) == sorted(ids) and runs["run_id"].is_unique
    assert set(runs["status"]) == {"ok"}


def test_failing_run_is_recorded_and_sweep_goes_on(tmp_path):
    configs = six_configs()[:2] + [dict(BASE, strategy="goals", batch_size=5000)] + \
        six_configs()[2:4]
    summary = run_sweep(configs, tmp_path)
    assert summary["ran"] == 5 and summary["statuses"] == {"ok": 4, "failed": 1}
    runs = load_records(tmp_path)["runs"]
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 1 and "batch_size" in failed["error"].iloc[0]

    assert summary["failed"] == 1 and "batch_size" in summary["first_error"]
    assert summary["failed_run_ids"] == [run_id(configs[2])]

    # A failed run is skipped like any other unless asked to retry it; the summary still
    # counts it, and says it was skipped.
    again = run_sweep(configs, tmp_path)
    assert again["ran"] == 0 and again["failed"] == 1 and again["skipped_failed"] == 1
    retried = run_sweep(configs, tmp_path, retry_failed=True)
    assert retried["ran"] == 1 and retried["statuses"] == {"failed": 1}
    assert retried["skipped_failed"] == 0 and retried["failed"] == 1
    # Runs of another sweep in the same folder are not counted.
    assert run_sweep(configs[:2], tmp_path)["failed"] == 0


def test_invalid_sweep_fails_before_any_run(tmp_path):
    configs = six_configs() + [dict(BASE, strategy="adagrad")]
    with pytest.raises(ConfigError, match="strategy"):
        run_sweep(configs, tmp_path)
    assert not records_dir(tmp_path).exists()

    missing = [dict(BASE, dataset="cifar10", model="3c3d", data_root=str(tmp_path / "none"))]
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        run_sweep(six_configs() + missing, tmp_path)
    assert not records_dir(tmp_path).exists()

    with pytest.raises(SweepError, match="executor"):
        run_sweep(six_configs(), tmp_path, executor="threads")
    with pytest.raises(SweepError, match="workers"):
        run_sweep(six_configs(), tmp_path, executor="process", workers=0)


# --- executors ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_process_executor_matches_sequential(tmp_path):
    configs = six_configs()[:4]
    run_sweep(configs, tmp_path / "sequential")
    summary = run_sweep(configs, tmp_path / "process", executor="process", workers=2)
    assert summary["ran"] == 4 and summary["statuses"] == {"ok": 4}
    for config in configs:
        rid = run_id(config)
        seq = json.loads(record_path(tmp_path / "sequential", rid).read_text())
        par = json.loads(record_path(tmp_path / "process", rid).read_text())
        # Same run_one, same seed, same thread count: the same numbers in another process.
        assert par["trace"] == seq["trace"] and par["final"] == seq["final"]
        assert par["provenance"]["threads"] == 1


@pytest.mark.slow
def test_submitit_local_executor(tmp_path):
    pytest.importorskip("submitit")
    configs = six_configs()[:2]
    summary = run_sweep(configs, tmp_path, executor="submitit",
                        submitit_options={"cluster": "local", "parameters": {"timeout_min": 5}})
    assert summary["ran"] == 2 and summary["lost"] == 0 and summary["statuses"] == {"ok": 2}
    assert set(finished_runs(tmp_path)) == {run_id(c) for c in configs}
    with pytest.raises(SweepError, match="sweep.submitit.partition"):
        run_sweep(six_configs()[2:3], tmp_path, executor="submitit",
                  submitit_options={"partition": "gpu"})


# --- profiles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile, runs", [("tiny", 33), ("quick", 132), ("cifar10-cpu", 99),
                                           ("paper", 330)])
def test_profiles_expand_and_validate(profile, runs):
    configs = profile_configs(profile)
    prepared = prepare(configs, check_data=False)
    assert len(configs) == len(prepared) == runs
    strategies = {config["strategy"] for _, config in prepared}
    directions = {config["direction"] for _, config in prepared}
    assert strategies == set(STRATEGIES) and directions == set(DIRECTIONS)
    assert sweep_section(profile)["executor"] in sweep_module.EXECUTORS
    assert profile_out_dir(profile).name == profile


def test_profile_contents():
    quick = [config for _, config in prepare(profile_configs("quick"), check_data=False)]
    assert {c["model"] for c in quick} == {"mlp", "cnn"} and {c["seed"] for c in quick} == {0, 1}
    assert {c["dataset"] for c in quick} == {"digits"} and {c["device"] for c in quick} == {"cpu"}
    cifar = [config for _, config in prepare(profile_configs("cifar10-cpu"), check_data=False)]
    assert {(c["dataset"], c["model"], c["download"]) for c in cifar} == {
        ("cifar10", "3c3d", False)}
    assert {c["seed"] for c in cifar} == {0, 1, 2}
    paper = [config for _, config in prepare(profile_configs("paper"), check_data=False)]
    assert {c["model"] for c in paper} == {"resnet18", "efficientnet_b0"}
    assert {c["seed"] for c in paper} == set(range(5)) and {c["device"] for c in paper} == {"cuda"}


def test_sweep_profile_tiny(tmp_path):
    summary = sweep_profile("tiny", out_dir=tmp_path)
    assert summary["ran"] == 33
    runs = load_records(tmp_path)["runs"]
    assert len(runs) == 33 and set(runs["status"]) == {"ok"}


def test_profile_errors(tmp_path):
    with pytest.raises(SweepError, match="not found"):
        sweep_section("no-such-profile")
    path = tmp_path / "bad.yaml"
    path.write_text("sweep:\n  grids: {}\n")
    with pytest.raises(SweepError, match="sweep.grids"):
        sweep_section(str(path))
    path.write_text("notebooks: {}\n")
    with pytest.raises(SweepError, match="no 'sweep:'"):
        sweep_section(str(path))


def test_missing_cuda_fails_the_sweep_before_any_run(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    configs = six_configs()[:1] + [dict(BASE, device="cuda")]
    with pytest.raises(ConfigError, match="run 1 of the sweep: device: .*use device: cpu"):
        run_sweep(configs, tmp_path)
    assert not records_dir(tmp_path).exists()
    # Without the machine checks (reading a GPU profile elsewhere) the configuration is valid.
    assert len(prepare(configs, check_data=False)) == 2


def test_malformed_profile_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sweep:\n  grid:\n    seed: [0, 1\n")
    with pytest.raises(SweepError, match=rf"{bad}, line \d+, column \d+: invalid YAML: .*"):
        sweep_section(bad)


class FakeJob:
    def __init__(self, rid, log):
        self.rid, self.log, self.polls, self.job_id = rid, log, 0, rid

    def done(self):
        self.polls += 1
        return self.polls > 2

    def result(self):
        self.log["running"] -= 1
        return self.rid, "ok"


class FakeExecutor:
    def __init__(self):
        self.log = {"running": 0, "most": 0, "submitted": 0}

    def submit(self, function, config, out_dir):
        self.log["running"] += 1
        self.log["submitted"] += 1
        self.log["most"] = max(self.log["most"], self.log["running"])
        return FakeJob(f"run{config['seed']}", self.log)


def test_local_submitit_window_limits_concurrency():
    fake = FakeExecutor()
    todo = [(f"run{seed}", dict(BASE, seed=seed)) for seed in range(7)]
    bar = sweep_module._progress_bar(len(todo), False)
    results, lost = sweep_module._run_local_window(fake, todo, None, 3, bar, poll_seconds=0)
    assert lost == 0 and sorted(results) == sorted((rid, "ok") for rid, _ in todo)
    assert fake.log["submitted"] == 7 and fake.log["most"] == 3


def test_submitit_without_slurm_warns_and_limits(tmp_path, monkeypatch, caplog):
    submitit = pytest.importorskip("submitit")
    monkeypatch.setattr(submitit.AutoExecutor, "which", staticmethod(lambda: "local"))
    limits = []

    def fake_window(executor, todo, out_dir, limit, bar):
        limits.append(limit)
        return [], 0

    monkeypatch.setattr(sweep_module, "_run_local_window", fake_window)
    with caplog.at_level("WARNING"):
        run_sweep(six_configs()[:1], tmp_path, executor="submitit")
    assert "no Slurm cluster found" in caplog.text and "local executor" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        run_sweep(six_configs()[:1], tmp_path, executor="submitit", workers=3,
                  submitit_options={"cluster": "local"})
    assert "no Slurm" not in caplog.text  # asked for local: nothing to warn about
    assert limits == [os.cpu_count(), 3]
