"""Table writer: three formats, diverged/missing vocabulary, provenance, escaping."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pandas as pd

from goals import tables
from goals.paths import git_state, repo_relative, repo_root


def sample() -> pd.DataFrame:
    frame = pd.DataFrame({
        "strategy": ["goals", "constant-x10", "cosine"],
        "rank": [1, 2, 3],
        "R": [0.123456, math.inf, math.nan],
        "mean_rd": [0.05, math.inf, math.nan],
        "best_only": [True, False, False],
    }).set_index("strategy")
    return frame


def test_write_table_writes_every_format(tmp_path):
    paths = tables.write_table(sample(), tmp_path / "sub" / "ranking", "R per strategy, 50% cut",
                               provenance_extra={"profile": "quick"})
    assert set(paths) == {"csv", "json", "md", "tex"}
    assert all(path.exists() for path in paths.values())

    md = paths["md"].read_text()
    assert md.startswith("<!--") and "profile=quick" in md
    assert "diverged" in md and "missing" in md and "0.1235" in md
    assert "Table: R per strategy, 50% cut" in md
    assert "| goals " in md  # the named index became a column

    tex = paths["tex"].read_text()
    assert tex.startswith("% made_by: goals.tables.write_table")
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "diverged" in tex and "missing" in tex
    assert "mean\\_rd" in tex and "50\\% cut" in tex  # headers and caption escaped
    assert "\\label{tab:ranking}" in tex

    # CSV stays plain: no comment line, inf and empty fields read back as numbers.
    csv_text = paths["csv"].read_text()
    assert csv_text.splitlines()[0] == "strategy,rank,R,mean_rd,best_only"
    back = pd.read_csv(paths["csv"])
    assert back["R"].iloc[1] == np.inf and math.isnan(back["R"].iloc[2])

    sidecar = json.loads(paths["json"].read_text())
    assert sidecar["caption"] == "R per strategy, 50% cut"
    assert sidecar["provenance"]["profile"] == "quick"
    assert sidecar["rows"] == 3 and sidecar["files"]["tex"] == "ranking.tex"


def test_same_table_gives_same_bytes(tmp_path):
    first = tables.write_table(sample(), tmp_path / "a", "caption")
    second = tables.write_table(sample(), tmp_path / "b", "caption")
    for kind in ("csv", "md"):
        assert first[kind].read_bytes() == second[kind].read_bytes()
    strip = (lambda text: text.replace("tab:a", "").replace("tab:b", ""))
    assert strip(first["tex"].read_text()) == strip(second["tex"].read_text())


def test_render_cell():
    assert tables.render_cell(math.inf) == "diverged"
    assert tables.render_cell(-math.inf) == "-diverged"
    assert tables.render_cell(math.nan) == "missing"
    assert tables.render_cell(None) == "missing"
    assert tables.render_cell(pd.NA) == "missing"
    assert tables.render_cell(np.float64(1234567.0)) == "1.235e+06"
    assert tables.render_cell(np.int64(3)) == "3"
    assert tables.render_cell(True) == "yes"
    assert tables.render_cell("x_y") == "x_y"


def test_multiindex_columns_are_flattened(tmp_path):
    frame = pd.DataFrame([[1.0, math.inf]], columns=pd.MultiIndex.from_tuples(
        [("sgd", "R"), ("adam", "R")]))
    paths = tables.write_table(frame, tmp_path / "wide", "wide table")
    assert pd.read_csv(paths["csv"]).columns.tolist() == ["sgd R", "adam R"]
    assert "diverged" in paths["md"].read_text()


def git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)


def test_git_commit_ignores_generated_folders(tmp_path):
    repo = tmp_path / "repo"
    for folder in ("goals", "figures", "runs"):
        (repo / folder).mkdir(parents=True)
        (repo / folder / "a.txt").write_text("one\n")
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    # Results rewritten by a reproduction (and untracked files) leave the commit clean, even
    # when asked from a sub-folder.
    (repo / "figures" / "a.txt").write_text("two\n")
    (repo / "runs" / "a.txt").write_text("two\n")
    (repo / "goals" / "new.txt").write_text("untracked\n")
    clean = tables.git_commit(repo / "goals")
    assert len(clean) == 40 and not clean.endswith("+dirty")
    assert git_state(repo) == (clean, False)
    # A change to the code makes it dirty, whichever folder asks.
    (repo / "a.txt").write_text("code\n")
    git(repo, "add", "a.txt")
    assert tables.git_commit(repo / "goals") == f"{clean}+dirty"
    assert git_state(repo / "figures") == (clean, True)
    assert tables.git_commit(tmp_path) == "unknown"  # not a checkout


def test_provenance_paths_are_relative_to_the_repository(tmp_path):
    inside = repo_root() / "runs" / "quick"
    info = tables.provenance({"records": str(inside), "path": inside, "outside": str(tmp_path),
                              "lr": 0.5, "name": "quick"})
    assert info["records"] == "runs/quick" and info["path"] == "runs/quick"
    assert info["outside"] == str(tmp_path)
    assert info["lr"] == "0.5" and info["name"] == "quick"
    assert repo_relative(repo_root()) == "." and repo_relative("runs/x") == "runs/x"
