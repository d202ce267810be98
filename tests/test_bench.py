"""Smoke tests of the benchmark scripts: each runs in its tiny mode and prints its RESULT line.

No absolute times are asserted (the machines are shared and noisy); the tests check that every
script runs to the end, reports a well-formed ratio with the machine it ran on, and, where the
number does not depend on timing (memory, evaluation counts), that it is plausible.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"

RESULT = re.compile(
    r"^RESULT (?P<name>\w+)=(?P<value>\S+) target(?P<op><=|>=)(?P<target>\S+) "
    r"(?P<verdict>PASS|MISS|SKIPPED)\b.* \| cpu='[^']*' cores=\d+ torch=\S+ threads=\d+"
)


def run_script(name: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 300) -> tuple[subprocess.CompletedProcess, re.Match]:
    """Run ``bench/<name>`` with ``args``; return the process and its parsed RESULT line."""
    environment = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1", **(env or {}))
    process = subprocess.run([sys.executable, str(BENCH / name), *args], check=False,
                             cwd=BENCH.parent, capture_output=True, text=True, timeout=timeout,
                             env=environment)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-4000:]
    lines = [line for line in process.stdout.splitlines() if line.strip()]
    assert lines, process.stderr[-4000:]
    match = RESULT.match(lines[-1])
    assert match, f"last line is not a RESULT line: {lines[-1]!r}"
    return process, match


def number(text: str) -> float:
    """``"12.5%"`` -> 12.5, ``"0.06min"`` -> 0.06, ``"+0.00"`` -> 0.0."""
    return float(re.match(r"[-+]?[0-9.]+", text).group(0))


def test_overhead_quick_reports_each_direction():
    process, match = run_script("overhead.py", "--quick")
    assert match["name"] == "overhead_per_fe" and match["value"].endswith("%")
    assert match["op"] == "<=" and match["target"] == "3.0%"
    # A GOALS step does more than bare FEs, so its time per FE cannot be far below theirs.
    assert number(match["value"]) > -50
    table = process.stdout
    for direction in ("sgd", "rmsprop", "adam"):
        assert re.search(rf"digits/mlp \(tiny\)\s+\d+ {direction}\s", table), table


def test_evaluations_quick_counts_at_least_one_fe_per_iteration():
    process, match = run_script("evaluations.py", "--quick")
    assert match["name"] == "goals_fe_per_iteration" and match["target"] == "2.2"
    assert number(match["value"]) >= 1.0
    # GOS-LS spends one trial and one FE at the accepted point: 2 FEs per iteration.
    gos_rows = [line.split() for line in process.stdout.splitlines() if " gos-ls " in line]
    assert len(gos_rows) == 3
    assert all(float(row[4]) == 2.0 for row in gos_rows), gos_rows


def test_data_pipeline_quick_reports_a_share():
    process, match = run_script("data_pipeline.py", "--quick")
    assert match["name"] == "sampling_share_of_fe" and match["target"] == "2.0%"
    # Sampling is part of an FE, so its share lies in (0, 100 %] up to timing noise.
    assert 0 < number(match["value"]) < 150
    assert "cifar-shaped/3c3d" in process.stdout


def test_memory_quick_meets_the_state_target():
    process, match = run_script("memory.py", "--quick")
    assert match["name"] == "state_copies_over_target"
    assert match["verdict"] == "PASS", process.stdout
    rows = {line.split()[1]: float(line.split()[3]) for line in process.stdout.splitlines()
            if line.startswith("digits/mlp") and "True" in line}
    # At least the direction's own buffers, at most those plus two parameter copies.
    own = {"sgd": 0, "sgd+momentum": 1, "rmsprop": 1, "adam": 2}
    assert set(rows) == set(own)
    assert all(own[name] <= rows[name] <= own[name] + 2 for name in own), rows


def test_end_to_end_quick_runs_the_tiny_profile():
    process, match = run_script("end_to_end.py", "--quick")
    assert match["name"] == "end_to_end" and match["value"].endswith("min")
    assert "profile tiny" in match.group(0)
    assert re.search(r"runs: (\d+) \(\1 ran, 0 skipped\)", process.stdout), process.stdout


def test_gpu_check_refuses_cleanly_without_cuda():
    process, match = run_script("gpu_check.py", env={"CUDA_VISIBLE_DEVICES": ""})
    assert match["verdict"] == "SKIPPED"
    assert "no CUDA device" in process.stdout and "Traceback" not in process.stderr


def test_gpu_check_cpu_dry_run():
    process, match = run_script("gpu_check.py", "--device", "cpu", "--quick")
    assert match["name"] == "gpu_fe_throughput_ratio"
    assert 0 < number(match["value"]) < 3
    for setting in ("fp32", "bf16", "bf16+cl"):
        assert re.search(rf"^{re.escape(setting)}\s+[0-9.]+\s+[0-9.]+", process.stdout,
                         re.MULTILINE), process.stdout
