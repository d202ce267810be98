"""The README's training-loop example runs as written."""

from __future__ import annotations

import re

from goals.paths import repo_root

HEADING = "## Use GOALS in your own training loop"


def readme_example() -> str:
    text = (repo_root() / "README.md").read_text(encoding="utf-8")
    assert HEADING in text, f"README.md lost its section {HEADING!r}"
    section = text.split(HEADING, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match, "the training-loop section has no python code block"
    return match.group(1)


def test_readme_training_loop_runs_and_learns(capsys):
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "train accuracy" in printed
    optimizer = namespace["optimizer"]
    assert namespace["accuracy"] > 0.9
    assert optimizer.total_evaluations >= 400  # at least two FEs per iteration
