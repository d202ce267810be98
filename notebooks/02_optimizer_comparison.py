# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Optimizer comparison: every learning-rate strategy on every search direction
#
# Reproduces the paper's comparison: the 11 learning-rate strategies (GOALS, GOS-LS, GOLS-I,
# GOLS-Back, SLS-Armijo, constant at the recommended rate, ×10 and ×0.1, step decay, cosine
# annealing and cosine with warm restarts) on the search directions SGD, RMSprop and Adam, for
# every model and seed of the profile, all runs of a problem with the same budget of function
# evaluations (FEs: one forward and backward pass on one mini-batch).
#
# The runs are the profile's sweep (`profiles/<profile>.yaml`, key `sweep:`). Finished runs are
# skipped, so re-running this notebook after an interruption resumes where it stopped, and a
# second run only redraws the figures.
#
# Writes, per (data set, model), into `figures/<profile>/`:
# `cmp_curves_<data>_<model>` (training loss and test error against FEs, median over seeds with
# the band from the smallest to the largest seed), `cmp_step_sizes_<data>_<model>` (step size on
# a log scale), `cmp_final_test_error_<data>_<model>` (one point per seed), plus
# `cmp_fe_per_iteration` and the table `cmp_summary`.

# %% tags=["parameters"]
profile: str = "quick"  # profile name under profiles/, or a path to a profile YAML file
output_root: str = ""  # root of figures/ and runs/; empty means the repository (records: sweep.out)
run_sweep: bool = True  # run the missing runs first (False: only draw what is recorded)
executor: str = ""  # "sequential", "process" or "submitit"; empty means the profile's choice
workers: int = 0  # process pool size; 0 means the profile's choice
retry_failed: bool = False  # run again the runs whose record says failed

# %%
# Validate the parameters and derive everything computed from them.
from goals.notebook_params import ParameterError, check, sweep_folder
from goals.notebook_params import output_root as resolve_root
from goals.sweep import EXECUTORS, SweepError, resolve_profile, sweep_section

profile = check("profile", profile, str)
output_root = check("output_root", output_root, str)
run_sweep = check("run_sweep", run_sweep, bool)
executor = check("executor", executor, str, choices=("",) + EXECUTORS)
workers = check("workers", workers, int, min_value=0)
retry_failed = check("retry_failed", retry_failed, bool)
try:
    profile_file = resolve_profile(profile)
    section = sweep_section(profile)
except SweepError as error:
    raise ParameterError(f"parameter 'profile': {error}") from None

profile_name = profile_file.stem
runs_dir = sweep_folder(profile, output_root)
out_dir = resolve_root(output_root) / "figures" / profile_name
out_dir.mkdir(parents=True, exist_ok=True)
print(f"profile {profile_file}\nrun records in {runs_dir}\nfigures and tables in {out_dir}")

# %% [markdown]
# ## Run the sweep (skipping finished runs)

# %%
import logging
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np

from goals import plotting
from goals.labels import LINE_SEARCH_STRATEGIES
from goals.records import load_records
from goals.robust import require_evaluations
from goals.sweep import read_manifest, sweep_profile
from goals.tables import provenance, write_table

logging.basicConfig(level=logging.WARNING, force=True)
logging.getLogger("goals").setLevel(logging.WARNING)
# The sweep's progress bar is off in batch runs (TQDM_DISABLE); without ipywidgets tqdm would
# still warn once when it is imported.
warnings.filterwarnings("ignore", message="IProgress not found")
plotting.use_theme()
started = time.perf_counter()

if run_sweep:
    summary = sweep_profile(profile, out_dir=runs_dir, executor=executor or None,
                            workers=workers or None, retry_failed=retry_failed, progress=False)
    print(f"{summary['total']} runs: {summary['skipped']} already recorded, {summary['ran']} "
          f"run now {summary['statuses']}, {summary['lost']} lost, "
          f"{summary['wall_time']:.1f} s")

# %% [markdown]
# ## Load the records of this sweep
#
# Only runs listed in the sweep's manifest count: records of an earlier, different grid in the
# same folder are ignored. When no run has evaluations (every run failed), the notebook stops here
# with the number of failed runs and the first error; when only some failed or diverged, they are
# listed and the figures show the others.

# %%
frames = load_records(runs_dir)
manifest = read_manifest(runs_dir)
if manifest is None:
    raise FileNotFoundError(f"no sweep manifest in {runs_dir}: run this notebook with "
                            "run_sweep True first")
expected = set(manifest["run_ids"])
runs, evals, trace = (frames[name][frames[name]["run_id"].isin(expected)]
                      for name in ("runs", "evals", "trace"))
missing = len(expected - set(runs["run_id"]))
print(f"{len(runs)} of {len(expected)} runs recorded ({missing} missing); status: "
      f"{runs['status'].value_counts().to_dict()}")
# Stops with the count of failed runs and the first error when no run has evaluations.
not_ok = require_evaluations(runs, evals)
if not not_ok.empty:
    print(f"\n{len(not_ok)} run(s) did not finish ok; fix the cause of a failure and rerun with "
          "retry_failed=True:")
    print(not_ok.to_string(index=False))
info = provenance({"profile": profile_name, "notebook": "02_optimizer_comparison",
                   "records": str(runs_dir), "runs": len(runs)},
                  made_by="notebooks/02_optimizer_comparison")

# %% [markdown]
# ## Training loss and test error against FEs, and the step sizes chosen

# %%
problems = runs[["dataset", "model"]].drop_duplicates().itertuples(index=False)
for dataset, model in problems:
    selected = (evals["dataset"] == dataset) & (evals["model"] == model)
    name = f"{dataset}_{model}"
    if not selected.any():
        print(f"{dataset} / {model}: no run has evaluations (all failed), no figure")
        continue
    fig = plotting.plot_metric_vs_fe(
        evals[selected], title=f"{dataset} / {model}: median and range over seeds")
    plotting.save_figure(fig, out_dir / f"cmp_curves_{name}", info=info)
    plt.show()

    part = trace[(trace["dataset"] == dataset) & (trace["model"] == model)]
    if not part.empty:
        fig = plotting.plot_step_sizes(part, title=f"{dataset} / {model}: step size per "
                                                   "iteration (median and range over seeds)")
        plotting.save_figure(fig, out_dir / f"cmp_step_sizes_{name}", info=info)
        plt.show()

    finished = runs[(runs["dataset"] == dataset) & (runs["model"] == model)]
    if not np.isfinite(finished["final_test_error"].astype(float)).any():
        print(f"{dataset} / {model}: no finite final test error, no per-seed figure")
        continue
    fig = plotting.plot_final_metric(finished, "final_test_error",
                                     title=f"{dataset} / {model}: final test error per seed")
    plotting.save_figure(fig, out_dir / f"cmp_final_test_error_{name}", info=info)
    plt.show()

# %% [markdown]
# ## Cost of the line searches: FEs per iteration

# %%
line_search_trace = trace[trace["strategy"].isin(LINE_SEARCH_STRATEGIES)]
if not line_search_trace.empty:
    fig = plotting.plot_fe_per_iteration(line_search_trace,
                                         title="FEs per iteration, all problems and seeds")
    plotting.save_figure(fig, out_dir / "cmp_fe_per_iteration", info=info)
    plt.show()

# %% [markdown]
# ## Summary table (median over seeds)

# %%
keys = ["dataset", "model", "direction", "strategy"]
table = (runs.groupby(keys, sort=False)
         .agg(seeds=("seed", "nunique"), ok=("status", lambda s: int((s == "ok").sum())),
              train_loss=("final_train_loss", "median"), test_error=("final_test_error", "median"),
              fe=("fe", "median"), iterations=("iterations", "median"),
              wall_time_s=("wall_time", "median"))
         .reset_index())
write_table(table, out_dir / "cmp_summary",
            "Final training loss and test error (median over seeds), FEs, iterations and wall "
            "time per run for every problem and strategy.",
            provenance_extra={"profile": profile_name, "records": str(runs_dir)})
print(table.to_string(index=False, float_format="%.4g"))
print(f"notebook finished in {time.perf_counter() - started:.1f} s")
