"""run_one: every strategy x direction on digits, FE accounting, failures, validation."""

from __future__ import annotations

import json
import math

import pytest
import torch

from goals import runs as runs_module
from goals.labels import DIRECTIONS, STRATEGIES
from goals.runs import CONFIG_FIELDS, ConfigError, run_one, validate_config
from goals.strategies import STRATEGY_SPECS

torch.set_num_threads(1)

TINY = {"dataset": "digits", "model": "mlp", "width": 0.5, "budget_fe": 30, "batch_size": 16,
        "eval_every": 10, "eval_size": 200, "threads": 1}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_short_run_is_finite_and_counts_fes(strategy, direction):
    record = run_one(dict(TINY, strategy=strategy, direction=direction))
    assert record["status"] == "ok", record["error"]
    assert all(math.isfinite(value) for value in record["final"].values())
    assert 0 <= record["final"]["train_error"] <= 1 and 0 <= record["final"]["test_error"] <= 1

    trace, evals = record["trace"], record["evals"]
    # Every FE is in the trace, the FE column is cumulative, and the budget is met; only the last
    # iteration may overshoot it.
    assert sum(trace["evaluations"]) == record["fe"] == trace["fe"][-1]
    assert trace["fe"] == [sum(trace["evaluations"][:k + 1]) for k in range(len(trace["fe"]))]
    assert record["fe"] >= TINY["budget_fe"] > record["fe"] - trace["evaluations"][-1]
    assert sum(trace["forward_evaluations"]) == record["forward_fe"]
    assert record["iterations"] == len(trace["iteration"]) == trace["iteration"][-1]
    assert all(step >= 0 for step in trace["step_size"])

    # Evaluations at FE 0, after each multiple of eval_every, and at the end.
    assert evals["fe"][0] == 0 and evals["fe"][-1] == record["fe"]
    assert len(evals["fe"]) >= 3 and evals["fe"] == sorted(evals["fe"])

    if strategy == "sls-armijo":
        # One FE per iteration at the start point; the trials are forward-only.
        assert record["fe"] == record["iterations"] == TINY["budget_fe"]
    elif STRATEGY_SPECS[strategy].is_line_search:
        # Gradient-only searches spend at least one trial FE in most iterations.
        assert record["iterations"] < record["fe"]
    else:
        assert record["fe"] == record["iterations"] == TINY["budget_fe"]
        assert evals["fe"] == [0, 10, 20, 30]
    if strategy == "sls-armijo":
        assert record["forward_fe"] > 0
    else:
        assert record["forward_fe"] == 0


def test_record_content_and_provenance():
    record = run_one(dict(TINY, strategy="cosine"))
    assert record["config"] == validate_config(dict(TINY, strategy="cosine"))
    assert len(record["run_id"]) == 12 and record["error"] is None
    provenance = record["provenance"]
    assert provenance["versions"]["torch"].startswith(torch.__version__.split("+")[0])
    assert provenance["versions"]["python"].count(".") == 2
    assert set(provenance["git"]) == {"commit", "dirty"}
    assert provenance["threads"] == 1 and provenance["device"] == "cpu"
    assert provenance["data_source"] == "scikit-learn load_digits"
    assert record["wall_time"] >= record["eval_time"] > 0
    json.dumps(record, allow_nan=False)  # strict JSON


def test_runs_are_repeatable_and_seed_dependent():
    config = dict(TINY, strategy="goals", direction="adam")
    first, second = run_one(config), run_one(config)
    assert first["trace"] == second["trace"] and first["final"] == second["final"]
    other = run_one(dict(config, seed=1))
    assert other["trace"]["loss"] != first["trace"]["loss"]


def test_threads_restored():
    torch.set_num_threads(1)
    run_one(dict(TINY, strategy="constant", threads=2))
    assert torch.get_num_threads() == 1


def test_trace_every_thins_the_trace():
    record = run_one(dict(TINY, strategy="constant", trace_every=10))
    assert record["trace"]["iteration"] == [10, 20, 30]


def test_divergence_is_recorded_not_raised():
    record = run_one(dict(TINY, strategy="constant", optimizer={"lr": 1.0e4}))
    assert record["status"] == "diverged"
    assert "not finite" in record["error"] or "training loss" in record["error"]
    assert record["fe"] < TINY["budget_fe"]
    assert record["trace"]["loss"][-1] is None  # non-finite stored as null
    json.dumps(record, allow_nan=False)


def test_failing_run_is_recorded_as_failed():
    record = run_one(dict(TINY, strategy="goals", batch_size=5000))
    assert record["status"] == "failed"
    assert "batch_size" in record["error"] and "Traceback" in record["error"]
    assert record["fe"] == 0 and record["final"]["test_loss"] is None


def test_missing_data_is_a_failed_record(tmp_path):
    record = run_one(dict(TINY, dataset="cifar10", model="3c3d", data_root=str(tmp_path)))
    assert record["status"] == "failed"
    assert "DataNotFoundError" in record["error"] and str(tmp_path) in record["error"]


def test_idle_strategy_stops_as_failed(monkeypatch):
    class Idle:
        mbss = "dynamic"

        def step(self, closure):
            return {"loss": 1.0, "step_size": 0.0, "growths": 0, "refinements": 0,
                    "criterion_met": False, "fallback": False}

    monkeypatch.setattr(runs_module, "build_strategy", lambda *args, **kwargs: Idle())
    record = run_one(dict(TINY, strategy="goals"))
    assert record["status"] == "failed" and "no function evaluation" in record["error"]
    assert record["iterations"] == runs_module.MAX_IDLE_ITERATIONS


def test_defaults_and_normalisation():
    config = validate_config({"width": 1, "data_root": None})
    assert set(config) == set(CONFIG_FIELDS)
    assert config["width"] == 1.0 and isinstance(config["width"], float)
    assert config["optimizer"] == {}


@pytest.mark.parametrize("config, field", [
    ({"learning_rate": 0.1}, "learning_rate"),
    ({"budget_fe": "100"}, "budget_fe"),
    ({"budget_fe": 10.0}, "budget_fe"),
    ({"seed": True}, "seed"),
    ({"width": "1e-3"}, "width"),
    ({"batch_size": 0}, "batch_size"),
    ({"strategy": "adagrad"}, "strategy"),
    ({"direction": None}, "direction"),
    ({"device": "tpu"}, "device"),
    ({"mbss": "static", "strategy": "cosine"}, "mbss"),
    ({"mbss": "dynamic", "strategy": "sls-armijo"}, "mbss"),
    ({"optimizer": {"lr": 0.1}, "strategy": "goals"}, "optimizer.lr"),
    ({"optimizer": {"momentum": -1.0}, "strategy": "constant"}, "optimizer.momentum"),
    ({"optimizer": [1, 2]}, "optimizer"),
    ({"subset": 10, "batch_size": 16}, "batch_size"),
])
def test_invalid_configs_name_the_field(config, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate_config(config)
    with pytest.raises(ConfigError):
        run_one(config)


def test_yaml_float_hint():
    with pytest.raises(ConfigError, match="1.0e-3"):
        validate_config({"width": "1e-3"})


def test_static_mbss_for_a_gradient_only_search():
    record = run_one(dict(TINY, strategy="goals", mbss="static"))
    assert record["status"] == "ok" and record["config"]["mbss"] == "static"


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_missing_cuda_device_is_rejected_when_checked(device, no_cuda):
    with pytest.raises(ConfigError, match="device: .*no CUDA device; use device: cpu"):
        validate_config({"device": device}, check_device=True)
    # Unchecked (the default), a GPU configuration still validates, e.g. to compute run ids.
    assert validate_config({"device": device})["device"] == device
    assert validate_config({"device": "cpu"}, check_device=True)["device"] == "cpu"


def test_cuda_index_beyond_the_visible_devices_is_rejected(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert validate_config({"device": "cuda:1"}, check_device=True)["device"] == "cuda:1"
    with pytest.raises(ConfigError, match="device: 'cuda:2'.*2 CUDA device"):
        validate_config({"device": "cuda:2"}, check_device=True)


def test_missing_mps_device_is_rejected(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no MPS device; use device: cpu"):
        validate_config({"device": "mps"}, check_device=True)


@pytest.mark.parametrize("config, field", [
    ({"width": "1e-3"}, "width"),
    ({"width": "0.5"}, "width"),
    ({"budget_fe": "100"}, "budget_fe"),
    ({"strategy": "constant", "optimizer": {"lr": "1e-3"}}, "optimizer.lr"),
    ({"strategy": "constant", "optimizer": {"momentum": "0.5"}}, "optimizer.momentum"),
])
def test_numbers_read_as_strings_get_the_yaml_hint(config, field):
    with pytest.raises(ConfigError, match=rf"^{field.replace('.', '[.]')}: .*write 1\.0e-3"):
        validate_config(config)


@pytest.mark.parametrize("config, field", [
    ({"width": "wide"}, "width"),
    ({"budget_fe": "ten"}, "budget_fe"),
    ({"strategy": "constant", "optimizer": {"lr": "fast"}}, "optimizer.lr"),
])
def test_non_numeric_strings_are_type_errors_without_the_hint(config, field):
    with pytest.raises(ConfigError, match=field.replace(".", "[.]")) as caught:
        validate_config(config)
    assert "1.0e-3" not in str(caught.value)


def test_numeric_looking_data_root_is_a_path():
    assert validate_config({"data_root": "2024"})["data_root"] == "2024"
