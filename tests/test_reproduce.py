"""The batch runner: parameter checks before execution, failures reported with their cell."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nbformat
import pytest

from goals import reproduce
from goals.reproduce import ProfileError


def write_notebook(path: Path, parameters: str, *cells: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    first = nbformat.v4.new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    notebook.cells = [first] + [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, path)


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    """Two small notebooks in a private folder: the first fails in its third cell."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    parameters = 'profile: str = ""  # set by the runner\noutput_root: str = ""\nmessage: str = "x"'
    write_notebook(folder / "10_fail.ipynb", parameters, "value = 1",
                   'raise ValueError(f"boom {message}")', "never = True")
    write_notebook(folder / "20_ok.ipynb", 'profile: str = ""\noutput_root: str = ""',
                   "from pathlib import Path\n"
                   "Path(output_root, 'ok.txt').write_text(profile + ' ' + "
                   "str(__import__('os').environ.get('TQDM_DISABLE')))")
    monkeypatch.setattr(reproduce, "notebooks_dir", lambda: folder)
    return folder


def write_profile(folder: Path, text: str, name: str = "mine.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_available_notebooks_and_selection_by_prefix(notebooks):
    assert reproduce.available_notebooks() == ["10_fail", "20_ok"]
    assert reproduce._select(["20"]) == ["20_ok"]
    assert reproduce._select(["20_ok", "10"]) == ["10_fail", "20_ok"]  # execution order kept
    with pytest.raises(ProfileError, match="unknown notebook '30'"):
        reproduce._select(["30"])


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ProfileError, match=r"unknown profile 'nope'; known profiles: \["):
        reproduce.profile_path("nope")
    with pytest.raises(ProfileError, match="does not exist"):
        reproduce.profile_path("missing/file.yaml")


def test_runner_fills_profile_and_output_root_and_passes_files_as_absolute_paths(
        notebooks, tmp_path, monkeypatch):
    profile = write_profile(tmp_path, "notebooks:\n  10_fail:\n    message: hello\n")
    declared = reproduce.declared_parameters(notebooks / "10_fail.ipynb")
    assert set(declared) == {"profile", "output_root", "message"}
    params = reproduce.notebook_parameters(str(profile), "10_fail", tmp_path / "out", declared)
    assert params == {"message": "hello", "profile": str(profile),
                      "output_root": str(tmp_path / "out")}
    monkeypatch.chdir(tmp_path)
    params = reproduce.notebook_parameters("mine.yaml", "10_fail", None, declared)
    assert params["profile"] == str(profile.resolve()) and params["output_root"] == ""


@pytest.mark.parametrize("section, message", [
    ("  10_fail:\n    mesage: typo\n", r"has no parameter\(s\) \['mesage'\]"),
    ("  10_fail:\n    profile: other\n", "set by the runner"),
    ("  99_missing:\n    message: x\n", "unknown notebook"),
    ("  10_fail:\n    message: 2024-01-01\n", "read it as a date"),
])
def test_bad_profiles_fail_before_any_notebook_runs(notebooks, tmp_path, section, message):
    profile = write_profile(tmp_path, f"notebooks:\n{section}")
    with pytest.raises(ProfileError, match=message):
        reproduce.reproduce(str(profile), out_root=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing was executed or written


def test_main_exit_status_2_for_a_bad_profile(notebooks, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert reproduce.main(["--profile", "does-not-exist", "--out-root", str(tmp_path)]) == 2
    assert "unknown profile" in caplog.text


def test_summary_table_counts_failures():
    results = [reproduce.NotebookResult("a", True, 1.0, Path("a")),
               reproduce.NotebookResult("b", False, 2.5, Path("b"), error="ValueError: x")]
    text = reproduce.summary(results)
    assert "FAILED" in text.splitlines()[2]
    assert text.splitlines()[-1].split() == ["total", "1", "failed", "3.5"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_failing_notebook_is_reported_with_its_cell_and_the_others_still_run(
        notebooks, tmp_path, caplog):
    profile = write_profile(tmp_path, "notebooks:\n  10_fail:\n    message: hello\n")
    out = tmp_path / "out"
    out.mkdir()
    caplog.set_level(logging.INFO)
    results = reproduce.reproduce(str(profile), out_root=out)

    failed, ok = results
    assert (failed.name, failed.ok, ok.name, ok.ok) == ("10_fail", False, "20_ok", True)
    assert failed.error == "ValueError: boom hello"
    assert 'raise ValueError(f"boom {message}")' in failed.failed_cell
    # The executed notebook of the failure is kept, with the injected parameters in it.
    executed = nbformat.read(out / "runs" / "mine" / "10_fail.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert 'message = "hello"' in injected[0].source
    # The second notebook ran, with its parameters and the batch environment.
    assert (out / "ok.txt").read_text() == f"{profile} 1"
    assert "10_fail: FAILED" in caplog.text and "boom hello" in caplog.text
    assert "2/2] 20_ok: done" in caplog.text
    summary = json.loads((out / "runs" / "mine" / "reproduce_summary.json").read_text())
    assert [(n["name"], n["ok"]) for n in summary["notebooks"]] == [("10_fail", False),
                                                                    ("20_ok", True)]
    assert summary["notebooks"][0]["error"] == "ValueError: boom hello"
    assert summary["total_seconds"] >= summary["notebooks"][1]["seconds"] > 0
    assert summary["machine"]["cpu_count"] >= 1 and summary["provenance"]["git_commit"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_main_exit_status_follows_the_notebooks(notebooks, tmp_path):
    profile = write_profile(tmp_path, "notebooks: {}\n")
    out = tmp_path / "out"
    out.mkdir()
    assert reproduce.main(["--profile", str(profile), "--notebooks", "20",
                           "--out-root", str(out), "-q"]) == 0
    assert (out / "ok.txt").is_file()
    assert reproduce.main(["--profile", str(profile), "--notebooks", "10",
                           "--out-root", str(out), "-q"]) == 1
    assert json.loads((out / "runs" / "mine" / "10_fail.ipynb").read_text())["cells"]
