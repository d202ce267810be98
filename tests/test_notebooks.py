"""The notebooks: reviewable as text, parameters papermill can see, and every one executed.

The slow tests execute all four notebooks through the batch runner with a tiny parameter file
written here (digits, a few dozen FEs per run) and assert on the files each one wrote. They take
about a minute on two cores; ``pytest -m "not slow"`` leaves them out.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest
import yaml

from goals import reproduce
from goals.labels import STRATEGY_LABELS
from goals.paths import repo_root

NOTEBOOKS = ("00_quickstart", "01_line_search_behaviour", "02_optimizer_comparison",
             "03_robustness_tables")
NOTEBOOK_DIR = repo_root() / "notebooks"
PROFILES = sorted((repo_root() / "profiles").glob("*.yaml"))

#: The tiny profile of the execution tests; row counts below are derived from it.
TINY = {
    "sweep": {
        "executor": "sequential",
        "base": {"dataset": "digits", "model": "mlp", "budget_fe": 40, "eval_every": 20,
                 "eval_size": 200, "batch_size": 64},
        "grid": {"direction": ["sgd", "adam"], "strategy": ["goals", "gos-ls", "constant"],
                 "seed": [0, 1]},
    },
    "notebooks": {
        "00_quickstart": {"fe_budget": 40, "report_every": 5},
        "01_line_search_behaviour": {
            "warmup_fe": 20, "grid_points": 6, "repeats": 2,
            "strategies": ["goals", "gols-i", "sls-armijo"],
            "sensitivity_fe": 20, "sensitivity_seeds": [0],
            "sensitivity": {"goals": {"tolerance": [0.5, 0.9]}},
        },
        "03_robustness_tables": {"focus": ["goals", "gos-ls"]},
    },
}


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    return cells[0]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs_and_paired_with_its_text_file(name):
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert notebook.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs"
    assert notebook.cells[0].cell_type == "markdown"
    assert notebook.cells[0].source.startswith("# "), "first cell: the title"

    text = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    assert [(c.cell_type, c.source) for c in text.cells] == [
        (c.cell_type, c.source) for c in notebook.cells], f"{name}.py and .ipynb differ"
    assert parameters_cell(text).source == parameters_cell(notebook).source


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_papermill_sees_every_parameter_with_a_type_and_a_comment(name):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    tree = ast.parse(parameters_cell(notebook).source)
    assigned = [node.target.id for node in tree.body if isinstance(node, ast.AnnAssign)]
    assert len(assigned) == len(tree.body), "parameters cell: annotated assignments only"
    found = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    # papermill skips any line with two "=" (e.g. in a comment): such a parameter would be
    # reported unknown by the runner.
    assert list(found) == assigned
    for parameter, info in found.items():
        assert info["inferred_type_name"] != "None", f"{name}: {parameter} lacks a type"
        assert info["help"], f"{name}: {parameter} lacks a comment"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_validates_its_parameters_and_never_uses_the_working_directory(name):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    index = notebook.cells.index(parameters_cell(notebook))
    after = notebook.cells[index + 1]
    assert after.cell_type == "code" and "check(" in after.source, "validation cell missing"
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    for pattern in ("os.getcwd", "Path.cwd", "Path(\".\")", "\"../", "'../", "os.chdir"):
        assert pattern not in code, f"{name} depends on the working directory ({pattern})"


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_profile_gives_valid_notebook_parameters(profile):
    for name in NOTEBOOKS:
        declared = reproduce.declared_parameters(NOTEBOOK_DIR / f"{name}.ipynb")
        params = reproduce.notebook_parameters(profile.stem, name, None, declared)
        assert params.get("profile", profile.stem) == profile.stem


# ---------------------------------------------------------------------------------------------
# Execution with the tiny profile
# ---------------------------------------------------------------------------------------------


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def assert_figure(stem: Path) -> None:
    pdf, png = stem.with_name(f"{stem.name}.pdf"), stem.with_name(f"{stem.name}.png")
    assert pdf.read_bytes().startswith(b"%PDF"), f"{pdf} is not a PDF"
    assert png.read_bytes().startswith(b"\x89PNG"), f"{png} is not a PNG"
    assert 2_000 < png.stat().st_size < 600_000, f"{png}: {png.stat().st_size} bytes"


def csv_rows(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").strip().splitlines()) - 1


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Execute 00 alone (to see that it writes nothing), then 01-03, into a scratch root."""
    folder = tmp_path_factory.mktemp("tiny")
    profile = folder / "tiny.yaml"
    profile.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    out = folder / "out"
    out.mkdir()
    first = reproduce.reproduce(str(profile), notebooks=["00"], out_root=out)
    after_quickstart = files_under(out)
    rest = reproduce.reproduce(str(profile), notebooks=["01", "02", "03"], out_root=out)
    return {"results": first + rest, "out": out, "after_quickstart": after_quickstart}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_notebook_runs_and_its_output_stays_small(tiny_run):
    results = tiny_run["results"]
    failures = [f"{r.name}: {r.error}\n{r.failed_cell}" for r in results if not r.ok]
    assert not failures, "\n".join(failures)
    assert [r.name for r in results] == list(NOTEBOOKS)
    for result in results:
        assert result.output_path == tiny_run["out"] / "runs" / "tiny" / f"{result.name}.ipynb"
        size = result.output_path.stat().st_size
        assert size < 1_500_000, f"{result.name}: executed notebook of {size} bytes"
        text = result.output_path.read_text(encoding="utf-8")
        assert "it/s]" not in text, f"{result.name}: a progress bar reached the output"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quickstart_writes_nothing(tiny_run):
    # Only the runner's own files: the executed notebook and the batch summary.
    assert tiny_run["after_quickstart"] == {"runs/tiny/00_quickstart.ipynb",
                                            "runs/tiny/reproduce_summary.json"}
    executed = nbformat.read(tiny_run["out"] / "runs" / "tiny" / "00_quickstart.ipynb", 4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert "after " in printed and "test error" in printed


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_line_search_notebook_writes_its_figures_and_tables(tiny_run):
    figures = tiny_run["out"] / "figures" / "tiny"
    for stem in ("ls_line_profile", "ls_step_spread", "ls_fe_per_search", "ls_sensitivity"):
        assert_figure(figures / stem)
    params = TINY["notebooks"]["01_line_search_behaviour"]
    # One row per line search and MBSS mode; one per value of each constant studied.
    assert csv_rows(figures / "ls_search_summary.csv") == len(params["strategies"]) * 2
    values = sum(len(v) for c in params["sensitivity"].values() for v in c.values())
    assert csv_rows(figures / "ls_sensitivity.csv") == values
    for suffix in ("md", "tex", "json"):
        assert (figures / f"ls_search_summary.{suffix}").stat().st_size > 100
    sidecar = json.loads((figures / "ls_search_summary.json").read_text())
    assert sidecar["provenance"]["profile"] == "tiny"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_comparison_notebook_runs_the_sweep_and_draws_every_problem(tiny_run):
    out = tiny_run["out"]
    grid = TINY["sweep"]["grid"]
    expected_runs = len(grid["direction"]) * len(grid["strategy"]) * len(grid["seed"])
    assert len(list((out / "runs" / "tiny" / "records").glob("*.json"))) == expected_runs
    figures = out / "figures" / "tiny"
    for stem in ("cmp_curves_digits_mlp", "cmp_step_sizes_digits_mlp",
                 "cmp_final_test_error_digits_mlp", "cmp_fe_per_iteration"):
        assert_figure(figures / stem)
    assert csv_rows(figures / "cmp_summary.csv") == len(grid["direction"]) * len(
        grid["strategy"])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_robustness_notebook_writes_rankings_and_the_rank_sentences(tiny_run):
    folder = tiny_run["out"] / "figures" / "tiny" / "robustness"
    strategies = TINY["sweep"]["grid"]["strategy"]
    for key in ("train", "test"):
        assert csv_rows(folder / f"ranking_{key}.csv") == len(strategies)
        for suffix in ("md", "tex"):
            assert (folder / f"ranking_{key}.{suffix}").stat().st_size > 100
    assert_figure(folder / "performance_profile")
    sentences = (folder / "rank_sentences.md").read_text(encoding="utf-8")
    for strategy in TINY["notebooks"]["03_robustness_tables"]["focus"]:
        assert f"- {STRATEGY_LABELS[strategy]} ranks " in sentences


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_validation_cell_stops_a_wrong_parameter_type(tmp_path):
    # Run from a foreign working directory, as papermill users do.
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / "01_line_search_behaviour.ipynb"), str(tmp_path / "out.ipynb"),
            parameters={"repeats": "3", "output_root": str(tmp_path)}, kernel_name="python3",
            cwd=str(tmp_path), progress_bar=False)
    assert info.value.ename == "ParameterError"
    assert "'repeats' must be an integer, got '3'" in info.value.evalue
    assert not (tmp_path / "figures").exists()
