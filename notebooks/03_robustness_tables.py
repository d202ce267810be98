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
# # Robustness of the learning-rate strategies: relative robust criterion and rankings
#
# Reproduces the paper's ranking of the strategies by the **relative robust criterion**, on the
# final training loss and on the final test error, from the run records of notebook 02. For each
# problem `s` (data set × model × search direction) and strategy `a`, with the median over seeds
# `f(a, s)` of a metric where lower is better:
#
# - relative deviation from the best strategy on the problem:
#   `RD(a, s) = (f(a, s) − f*(s)) / f*(s)`, with `f*(s) = min over a of f(a, s)`;
# - criterion: `R(a) = max over s of RD(a, s)`, ranked by ascending `R`;
# - also the mean of `RD`, the number of problems on which each strategy is best, the
#   performance profile `rho_a(tau)` (share of problems with `f(a, s) / f*(s) <= tau`) and the
#   spread over seeds.
#
# How diverged, failed and missing runs and a best value of zero are handled is documented in
# `goals/robust.py` (rules 1–7). The journal version of the paper reports GOS-LS first on both
# metrics and GOALS (GOS-LSC) third on training and second on test, against nine other
# strategies, on its own (larger) problems; the sentences below are computed from this profile's
# records, whatever they say.
#
# Writes tables (`.csv`, `.json`, `.md`, `.tex`) and figures (`.pdf`, `.png`) into
# `figures/<profile>/robustness/`, and the rank sentences into `rank_sentences.md` there.

# %% tags=["parameters"]
profile: str = "quick"  # profile name under profiles/, or a path to a profile YAML file
output_root: str = ""  # root of figures/ and runs/; empty means the repository (records: sweep.out)
focus: list = ["goals", "gos-ls"]  # strategies whose rank is stated in a sentence
failed_runs: str = "exclude"  # failed runs: "exclude" (counted apart) or "diverged"

# %%
# Validate the parameters and derive everything computed from them.
from goals.labels import STRATEGIES
from goals.notebook_params import ParameterError, check, check_list, sweep_folder
from goals.notebook_params import output_root as resolve_root
from goals.sweep import SweepError, resolve_profile

profile = check("profile", profile, str)
output_root = check("output_root", output_root, str)
focus = check_list("focus", focus, str, choices=list(STRATEGIES), unique=True)
failed_runs = check("failed_runs", failed_runs, str, choices=("exclude", "diverged"))
try:
    profile_name = resolve_profile(profile).stem
except SweepError as error:
    raise ParameterError(f"parameter 'profile': {error}") from None

runs_dir = sweep_folder(profile, output_root)
out_dir = resolve_root(output_root) / "figures" / profile_name / "robustness"
print(f"run records from {runs_dir}\ntables and figures in {out_dir}")

# %% [markdown]
# ## Load the run records of the comparison

# %%
import logging

from goals.records import load_records
from goals.robust import (
    describe_directions,
    describe_rank,
    failed_run_table,
    robustness_report,
)
from goals.sweep import read_manifest

logging.basicConfig(level=logging.WARNING, force=True)
manifest = read_manifest(runs_dir)
if manifest is None:
    raise FileNotFoundError(f"no sweep in {runs_dir}: run notebook 02_optimizer_comparison "
                            "for this profile first")
runs = load_records(runs_dir, trace=False)["runs"]
runs = runs[runs["run_id"].isin(set(manifest["run_ids"]))]
print(f"{len(runs)} runs of {len(manifest['run_ids'])} in the sweep; status "
      f"{runs['status'].value_counts().to_dict()}")
not_ok = failed_run_table(runs)
if not not_ok.empty:
    print(not_ok.to_string(index=False))

# %% [markdown]
# ## Criterion, rankings, performance profiles, per-seed spread
#
# When no problem is left to compare strategies on (every run failed or diverged), the report
# stops with `NoUsableRunsError`: it names how many runs failed and the first error, and writes no
# table, rather than a ranking of every strategy at rank 1 on zero problems.

# %%
tables = robustness_report(runs, out_dir, failed=failed_runs,
                           provenance_extra={"profile": profile_name, "records": str(runs_dir)})
for key, what in (("train", "final training loss"), ("test", "final test error")):
    ranking = tables[f"ranking_{key}"]
    print(f"\nRanking on the {what} (R: worst relative deviation over problems):")
    print(ranking[["label", "rank", "R", "mean_rd", "n_best", "n_problems"]]
          .to_string(float_format="%.3g"))

# %% [markdown]
# ## What the records say, in words

# %%
sentences = []
for key in ("train", "test"):
    for strategy in focus:
        sentences.append(describe_rank(tables[f"ranking_{key}"], strategy))
    if f"ranking_by_direction_{key}" in tables:
        sentences.append(describe_directions(tables[f"ranking_by_direction_{key}"]))
text = "\n".join(f"- {sentence}" for sentence in sentences)
(out_dir / "rank_sentences.md").write_text(
    f"<!-- computed by notebooks/03_robustness_tables from {len(runs)} run records of profile "
    f"{profile_name} -->\n\n{text}\n", encoding="utf-8")
print(text)

# %%
from IPython.display import Image, display

for name in ("performance_profile", "per_seed_train", "per_seed_test"):
    path = out_dir / f"{name}.png"
    if path.is_file():
        display(Image(filename=str(path), width=720))
print(f"{len(list(out_dir.iterdir()))} files in {out_dir}")
