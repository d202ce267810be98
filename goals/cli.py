"""Command line: ``python -m goals run | sweep | reproduce``.

Examples::

    python -m goals run strategy=goals direction=adam budget_fe=500
    python -m goals run --config my_run.yaml seed=3 optimizer.tolerance=0.5 --out runs/mine
    python -m goals sweep quick                       # profiles/quick.yaml
    python -m goals sweep profiles/paper.yaml --executor process --workers 4
    python -m goals sweep quick --set budget_fe=100 --out /tmp/quick-smoke
    python -m goals reproduce --profile quick         # notebooks, see goals.reproduce

``key=value`` values are read as JSON first (``1e-3`` is a number, ``true``, ``null``,
``[1, 2]``), then as YAML (so ``sgd`` is a string); ``optimizer.<name>=value`` sets one optimizer
override. Every field is checked before any work starts; a bad one stops the command with a
message naming it and exit status 2. Messages go to standard error through :mod:`logging`.

Exit status: 0 on success (a diverged run is a result, not an error), 1 when a ``run`` failed,
when any run of a sweep has a ``failed`` record (new or recorded by an earlier call; rerun them
with ``--retry-failed``) or sweep jobs ended without a record, 2 for invalid input or missing
data.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

_EPILOG_RUN = "configuration fields (key=value):\n"


def parse_value(text: str) -> Any:
    """Read one ``key=value`` value: JSON if it parses (numbers, true, null, lists), else YAML."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        from goals.sweep import yaml_error_message

        raise ValueError(yaml_error_message(error, f"value {text!r}")) from None


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["seed=1", "optimizer.lr=0.5"]`` into ``{"seed": 1, "optimizer": {"lr": 0.5}}``.

    Raises:
        ValueError: an item without ``=``, or a dotted key other than ``optimizer.<name>``.
    """
    config: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"expected key=value, got {item!r}")
        try:
            value = parse_value(text)
        except ValueError as error:
            raise ValueError(f"{item!r}: {error}") from None
        if "." in key:
            head, _, name = key.partition(".")
            if head != "optimizer" or not name or "." in name:
                raise ValueError(f"{key}: only optimizer.<name>=value may use a dotted key")
            config.setdefault("optimizer", {})[name] = value
        else:
            config[key] = value
    return config


def _fields_help() -> str:
    from goals.runs import CONFIG_FIELDS

    lines = [_EPILOG_RUN]
    for name, field in CONFIG_FIELDS.items():
        default = json.dumps(field.default)
        lines.append(f"  {name:<16} {field.help} (default {default})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m goals``."""
    parser = argparse.ArgumentParser(prog="python -m goals",
                                     description="GOALS companion: runs, sweeps, notebooks.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train one configuration",
                              epilog=_fields_help(),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("assignments", nargs="*", metavar="key=value", help="configuration fields")
    run.add_argument("--config", type=Path, help="YAML file with configuration fields")
    run.add_argument("--out", type=Path, default=Path("runs/single"),
                     help="output folder; the record goes to OUT/records/ (default runs/single)")

    sweep = commands.add_parser("sweep", help="run a profile's grid, skipping recorded runs")
    sweep.add_argument("profile", help="profile name (profiles/<name>.yaml) or YAML path")
    sweep.add_argument("--out", type=Path, help="output folder (default: the profile's)")
    sweep.add_argument("--executor", choices=("sequential", "process", "submitit"),
                       help="default: the profile's, else sequential")
    sweep.add_argument("--workers", type=int, help="process pool size")
    sweep.add_argument("--retry-failed", action="store_true", help="re-run failed runs")
    sweep.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="key=value",
                       help="override base fields of every run (changes their run ids)")
    sweep.add_argument("--dry-run", action="store_true",
                       help="validate and list what would run, run nothing")

    commands.add_parser("reproduce", help="execute the notebooks of a profile (see "
                        "python -m goals reproduce --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m goals``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "reproduce":
        return _reproduce(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    from goals.data import DataNotFoundError
    from goals.runs import ConfigError
    from goals.sweep import SweepError

    try:
        if args.command == "run":
            return _run(args)
        return _sweep(args)
    except (ConfigError, SweepError, DataNotFoundError, ValueError) as error:
        logger.error("%s", error)
        return 2


def _run(args: argparse.Namespace) -> int:
    from goals.records import write_record
    from goals.runs import ConfigError, run_one, validate_config

    config: dict[str, Any] = {}
    if args.config is not None:
        if not args.config.is_file():
            raise ConfigError(f"--config: no such file {args.config}")
        from goals.sweep import load_yaml

        loaded = load_yaml(args.config.read_text(encoding="utf-8"), f"--config {args.config}")
        loaded = {} if loaded is None else loaded
        if not isinstance(loaded, dict):
            raise ConfigError(f"--config: {args.config} must hold a mapping of fields")
        config.update(loaded)
    overrides = parse_assignments(args.assignments)
    optimizer = {**(config.get("optimizer") or {}), **overrides.pop("optimizer", {})}
    config.update(overrides)
    if optimizer:
        config["optimizer"] = optimizer

    config = validate_config(config, check_data=True, check_device=True)
    record = run_one(config)
    path = write_record(record, args.out)
    final = record["final"]
    logger.info("run %s: %s after %d FEs (%d iterations) in %.1f s; final train loss %s, "
                "test error %s; record %s", record["run_id"], record["status"], record["fe"],
                record["iterations"], record["wall_time"], final["train_loss"],
                final["test_error"], path)
    if record["status"] == "failed":
        logger.error("%s", record["error"])
        return 1
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from goals.sweep import (
        check_executor,
        prepare,
        profile_configs,
        profile_out_dir,
        run_sweep,
        sweep_section,
    )

    if args.workers is not None:
        check_executor(args.executor or "sequential", args.workers, "--")
    section = sweep_section(args.profile)
    overrides = parse_assignments(args.overrides)
    configs = [dict(config, **overrides) for config in profile_configs(args.profile)]
    out_dir = args.out if args.out is not None else profile_out_dir(args.profile)
    executor = args.executor or section.get("executor") or "sequential"
    workers = args.workers if args.workers is not None else section.get("workers")

    if args.dry_run:
        from goals.records import finished_runs

        prepared = prepare(configs, check_device=executor != "submitit")
        finished = finished_runs(out_dir)
        todo = [rid for rid, _ in prepared if rid not in finished]
        logger.info("%d runs valid; %d recorded in %s, %d to run with the %s executor",
                    len(prepared), len(prepared) - len(todo), out_dir, len(todo), executor)
        return 0

    summary = run_sweep(configs, out_dir, executor=executor, workers=workers,
                        retry_failed=args.retry_failed, submitit_options=section.get("submitit"))
    logger.info("%d runs: %d already recorded, %d run now %s in %.1f s; records in %s",
                summary["total"], summary["skipped"], summary["ran"], summary["statuses"],
                summary["wall_time"], Path(summary["out_dir"]) / "records")
    status = 0
    if summary["failed"]:
        first_line = str(summary["first_error"]).strip().splitlines()[0]
        logger.error("%d of %d runs of the sweep failed; first error: %s; use --retry-failed to "
                     "run them again", summary["failed"], summary["total"], first_line)
        status = 1
    if summary["lost"]:
        logger.error("%d jobs ended without a record; run the sweep again to do them",
                     summary["lost"])
        status = 1
    return status


def _reproduce(argv: list[str]) -> int:
    try:
        module = importlib.import_module("goals.reproduce")
    except ModuleNotFoundError as error:
        if error.name != "goals.reproduce":
            raise
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        logger.error("the notebook runner goals.reproduce is not installed in this checkout")
        return 2
    return int(module.main(argv) or 0)
