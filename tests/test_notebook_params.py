"""Parameter checks of the notebooks' validation cells: the papermill type traps fail clearly."""

from __future__ import annotations

import pytest

from goals.notebook_params import (
    ParameterError,
    check,
    check_list,
    check_mapping,
    output_root,
    sweep_folder,
)
from goals.paths import repo_root


def test_check_returns_valid_values_and_widens_ints_to_floats():
    assert check("n", 3, int) == 3
    value = check("lr", 1, float)
    assert value == 1.0 and isinstance(value, float)
    assert check("mode", "static", str, choices=("static", "dynamic")) == "static"
    assert check("flag", False, bool) is False
    assert check("maybe", None, int, allow_none=True) is None


@pytest.mark.parametrize("name, value, kind, message", [
    ("lr", "1e-3", float, "write it as 1.0e-3"),  # PyYAML reads 1e-3 as a string
    ("flag", "false", bool, "only turns True/False into booleans"),  # papermill -p flag false
    ("n", 3.0, int, "write 3 without a decimal point"),
    ("n", True, int, "must be an integer"),  # bool is an int in Python, not here
    ("lr", True, float, "must be a number"),
    ("lr", float("nan"), float, "must be finite"),
    ("name", 3, str, "must be a string"),
])
def test_check_rejects_wrong_types_with_a_hint(name, value, kind, message):
    with pytest.raises(ParameterError, match=message) as info:
        check(name, value, kind)
    assert repr(name) in str(info.value)


def test_check_rejects_unknown_choices_and_out_of_range_values():
    with pytest.raises(ParameterError, match=r"must be one of \['sgd', 'adam'\], got 'adamw'"):
        check("direction", "adamw", str, choices=["sgd", "adam"])
    with pytest.raises(ParameterError, match="must be >= 1"):
        check("repeats", 0, int, min_value=1)
    with pytest.raises(ParameterError, match="must be <= 1"):
        check("tolerance", 1.5, float, max_value=1)


def test_check_list_checks_every_item_and_explains_tuples_passed_as_strings():
    assert check_list("seeds", [0, 1], int, min_value=0) == [0, 1]
    assert check_list("steps", [1, 0.5], float) == [1.0, 0.5]
    with pytest.raises(ParameterError, match="pass a plain list"):
        check_list("seeds", "(0, 1)", int)  # papermill's Python API quotes tuples
    with pytest.raises(ParameterError, match=r"'seeds\[1\]' must be an integer"):
        check_list("seeds", [0, "1"], int)
    with pytest.raises(ParameterError, match="at least 1 item"):
        check_list("strategies", [], str, min_length=1)
    with pytest.raises(ParameterError, match="repeated items"):
        check_list("strategies", ["goals", "goals"], str, unique=True)


def test_check_mapping_rejects_unknown_keys_and_wrong_values():
    assert check_mapping("m", {"a": 1}, keys=["a", "b"], value_kind=int) == {"a": 1}
    with pytest.raises(ParameterError, match="unknown key 'c'"):
        check_mapping("m", {"c": 1}, keys=["a", "b"])
    with pytest.raises(ParameterError, match="must be a mapping"):
        check_mapping("m", [1], keys=["a"])
    with pytest.raises(ParameterError, match=r"m\['a'\]"):
        check_mapping("m", {"a": "x"}, value_kind=int)


def test_output_root_resolves_against_the_repository_not_the_working_directory(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert output_root("") == repo_root()
    assert output_root("somewhere") == (repo_root() / "somewhere").resolve()
    assert output_root(str(tmp_path)) == tmp_path
    with pytest.raises(ParameterError):
        output_root(None)


def test_sweep_folder_uses_the_output_root_when_given(tmp_path):
    profile = tmp_path / "mine.yaml"
    profile.write_text("sweep:\n  out: runs/elsewhere\n  grid: {seed: [0]}\n", encoding="utf-8")
    assert sweep_folder(str(profile), "") == repo_root() / "runs" / "elsewhere"
    assert sweep_folder(str(profile), str(tmp_path)) == tmp_path / "runs" / "mine"
