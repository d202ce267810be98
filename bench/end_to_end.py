"""End-to-end time of the quick profile's sweep: every run of ``profiles/quick.yaml``.

The engine's sweep (:func:`goals.sweep.sweep_profile`, with the profile's own executor and
workers) runs into a fresh temporary folder, so nothing is skipped as already recorded, and the
folder is deleted afterwards. Reported: wall time of the sweep, the number of runs and their
statuses, the sum of the runs' own wall times (what one core would need) and its ratio to the
sweep's wall time (how well the workers share the cores). Target: <= 10 minutes on 2 cores.

This takes minutes: run it once, on an otherwise idle machine if you can (the time is absolute,
not a ratio of two things measured side by side, so other load on the machine adds to it).

    python bench/end_to_end.py            # the quick profile (minutes)
    python bench/end_to_end.py --quick    # the tiny profile (seconds), for the smoke test
    python bench/end_to_end.py --profile cifar10-cpu --target-minutes 600
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchlib import result_line, set_threads


def run_times(out_dir: Path) -> list[float]:
    """Wall times of the runs recorded under ``out_dir``."""
    times = []
    for path in sorted((out_dir / "records").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record.get("wall_time"), (int, float)):
            times.append(float(record["wall_time"]))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the tiny profile instead of the quick one (smoke test)")
    parser.add_argument("--profile", default=None, help="profile name or path (default: quick)")
    parser.add_argument("--target-minutes", type=float, default=10.0)
    parser.add_argument("--keep", default=None, help="write the records here and keep them")
    args = parser.parse_args(argv)
    profile = args.profile or ("tiny" if args.quick else "quick")

    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        from goals.sweep import SweepError, load_profile, sweep_profile
    except ImportError as error:
        print(f"end_to_end: the engine's sweep is not available ({error}); nothing measured")
        return 1
    try:
        section = load_profile(profile)["sweep"]
    except (OSError, KeyError, TypeError, ValueError, SweepError) as error:
        print(f"end_to_end: cannot read profile {profile!r} ({type(error).__name__}: {error})")
        return 1
    # Runs set their own thread count; the main process only waits, but is reported alike.
    set_threads(int(section.get("base", {}).get("threads") or 1))
    print(f"profile {profile}: executor={section.get('executor')} workers={section.get('workers')}"
          f" threads per run={section.get('base', {}).get('threads')}")

    with tempfile.TemporaryDirectory(prefix="goals-bench-") as scratch:
        out_dir = Path(args.keep) if args.keep else Path(scratch) / profile
        started = time.perf_counter()
        summary = sweep_profile(profile, out_dir=out_dir, progress=False)
        wall = time.perf_counter() - started
        per_run = run_times(out_dir)

    busy = sum(per_run)
    print(f"runs: {summary['total']} ({summary['ran']} ran, {summary['skipped']} skipped), "
          f"statuses {summary['statuses']}")
    print(f"sweep wall time {wall:.1f} s; sum of run wall times {busy:.1f} s; "
          f"cores kept busy {busy / wall:.2f}")
    target = 60.0 * args.target_minutes
    result_line("end_to_end", f"{wall / 60:.2f}min", f"<={args.target_minutes:g}min",
                wall <= target,
                f"(profile {profile}, {summary['total']} runs, statuses {summary['statuses']}, "
                f"wall/target {wall / target:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
