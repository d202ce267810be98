"""Records: run ids, atomic writes, incomplete files, tidy frames."""

from __future__ import annotations

import json
import math
import os
import time

import pandas as pd
import pytest
import torch

from goals.records import (
    EVAL_COLUMNS,
    RUN_COLUMNS,
    TRACE_COLUMNS,
    clean_stale,
    finished_runs,
    load_records,
    read_record,
    record_path,
    records_dir,
    run_id,
    write_record,
)
from goals.runs import ConfigError, run_one, validate_config

torch.set_num_threads(1)

TINY = {"dataset": "digits", "model": "mlp", "width": 0.5, "budget_fe": 20, "batch_size": 16,
        "eval_every": 10, "eval_size": 200}


@pytest.fixture(scope="module")
def three_records():
    """An ok run, a diverged run and a failed run (real runs, a few FEs each)."""
    return [
        run_one(dict(TINY, strategy="goals", direction="adam")),
        run_one(dict(TINY, strategy="constant", optimizer={"lr": 1.0e4})),
        run_one(dict(TINY, strategy="cosine", batch_size=5000)),
    ]


def test_run_id_is_a_hash_of_the_complete_config():
    config = dict(TINY, strategy="goals")
    assert run_id(config) == run_id(validate_config(config))
    assert run_id(config) == run_id(dict(reversed(list(config.items()))))
    assert run_id(config) != run_id(dict(config, seed=1))
    assert run_id(config) != run_id(dict(config, optimizer={"tolerance": 0.5}))
    assert len(run_id(config)) == 12 and int(run_id(config), 16) >= 0
    # Where the data lives is not part of what is computed.
    assert run_id(config) == run_id(dict(config, data_root="/somewhere/else", download=True))
    with pytest.raises(ConfigError, match="colour"):
        run_id(dict(config, colour="red"))


def test_write_is_atomic_and_round_trips(tmp_path, three_records):
    record = three_records[0]
    path = write_record(record, tmp_path)
    assert path == record_path(tmp_path, record["run_id"])
    assert read_record(path) == json.loads(json.dumps(record))
    assert [p.name for p in records_dir(tmp_path).iterdir()] == [path.name]


def test_incomplete_files_are_never_complete_records(tmp_path, three_records):
    record = three_records[0]
    write_record(record, tmp_path)
    folder = records_dir(tmp_path)
    text = json.dumps(three_records[1])
    # A truncated record, a leftover temporary file and a record under the wrong name.
    (folder / f"{three_records[1]['run_id']}.json").write_text(text[: len(text) // 2])
    (folder / f".{three_records[2]['run_id']}.json.123.tmp").write_text(
        json.dumps(three_records[2]))
    (folder / "abcdefabcdef.json").write_text(json.dumps(three_records[2]))
    assert finished_runs(tmp_path) == {record["run_id"]: "ok"}
    assert read_record(folder / f"{three_records[1]['run_id']}.json") is None
    assert list(load_records(tmp_path)["runs"]["run_id"]) == [record["run_id"]]


def test_clean_stale_removes_only_old_temporary_files(tmp_path):
    folder = records_dir(tmp_path)
    folder.mkdir(parents=True)
    old, fresh = folder / ".aaa.json.1.tmp", folder / ".bbb.json.2.tmp"
    old.write_text("{")
    fresh.write_text("{")
    long_ago = time.time() - 3600
    os.utime(old, (long_ago, long_ago))
    assert clean_stale(tmp_path) == 1
    assert not old.exists() and fresh.exists()


def test_load_records_tidy_frames(tmp_path, three_records):
    for record in three_records:
        write_record(record, tmp_path)
    frames = load_records(tmp_path)
    runs, evals, trace = frames["runs"], frames["evals"], frames["trace"]
    assert list(runs.columns[: len(RUN_COLUMNS)]) == list(RUN_COLUMNS)
    assert list(evals.columns) == list(EVAL_COLUMNS)
    assert list(trace.columns) == list(TRACE_COLUMNS)

    # Every run is there, failed ones included, with its status; directions (sgd before adam)
    # and strategies (constant before cosine) in the order of goals.labels.
    assert list(runs["strategy"]) == ["constant", "cosine", "goals"]
    assert list(runs["direction"]) == ["sgd", "sgd", "adam"]
    assert list(runs["status"]) == ["diverged", "failed", "ok"]
    failed = runs.set_index("status").loc["failed"]
    assert math.isnan(failed["final_test_error"]) and "batch_size" in failed["error"]
    ok = runs.set_index("status").loc["ok"]
    assert 0 <= ok["final_test_error"] <= 1 and ok["fe"] >= TINY["budget_fe"]
    assert runs["final_train_loss"].dtype == float

    # Long frames hold each record's rows.
    for record in three_records:
        assert (evals["run_id"] == record["run_id"]).sum() == len(record["evals"]["fe"])
        assert (trace["run_id"] == record["run_id"]).sum() == len(record["trace"]["iteration"])
    goals_trace = trace[trace["strategy"] == "goals"]
    assert goals_trace["fe"].is_monotonic_increasing
    assert goals_trace["evaluations"].sum() == ok["fe"]
    assert str(trace["criterion_met"].dtype) == "boolean"
    assert trace.loc[trace["strategy"] == "constant", "criterion_met"].isna().all()
    assert trace["loss"].isna().sum() == 1  # the diverged iteration
    assert set(evals["dataset"]) == {"digits"} and set(evals["seed"]) == {0}

    assert "trace" in load_records(tmp_path, trace=False)
    assert load_records(tmp_path, trace=False)["trace"].empty


def test_load_records_of_empty_folder(tmp_path):
    frames = load_records(tmp_path)
    assert all(isinstance(frame, pd.DataFrame) and frame.empty for frame in frames.values())
    assert list(frames["runs"].columns[: len(RUN_COLUMNS)]) == list(RUN_COLUMNS)
