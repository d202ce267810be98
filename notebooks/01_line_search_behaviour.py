# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Line-search behaviour along real search directions
#
# Reproduces the paper's motivation and the behaviour of its line searches on a real network
# (a small MLP or CNN on scikit-learn's handwritten digits):
#
# 1. **`F` and `F'` along a line** under *static* MBSS (one mini-batch for the whole line) and
#    *dynamic* MBSS (a fresh mini-batch per evaluation). Under dynamic MBSS the loss `F` jumps
#    from point to point, so minimising function values finds spurious minima; the sign change
#    of the directional derivative `F'` from − to + stays near the same place.
# 2. **Where each line search lands** on that line (GOALS, GOS-LS, GOLS-I, GOLS-Back and the
#    function-value baseline SLS-Armijo).
# 3. **Spread of the accepted steps** over repeated iterations from the same point, and their
#    **FE cost** (one FE = one forward and backward pass on one mini-batch).
# 4. **Sensitivity to the constants that are our reading** of the paper (marked [ours] in the
#    README): the final training loss of short line-search runs as one constant is varied.
#
# Writes figures `ls_*.pdf|png` and tables `ls_*.csv|md|tex` into `figures/<profile>/`.
# The point on the line is reached by a short warm-up run of GOALS-SGD; directions are steepest
# descent `d = -g` on a fresh mini-batch, the direction of GOALS-SGD.

# %% tags=["parameters"]
profile: str = "quick"  # names the output folder figures/<profile>/ (set by the batch runner)
output_root: str = ""  # root of figures/; empty means the repository root
model_name: str = "mlp"  # network on the digits: "mlp" or "cnn"
seed: int = 0  # seed of the initial weights and of the batch order
batch_size: int = 128  # examples per mini-batch
warmup_fe: int = 100  # FEs of GOALS-SGD training before the line is probed (0: at init)
grid_points: int = 40  # points on the line for the F and F' profile
grid_decades: float = 3.0  # the grid spans a_max * 10**-grid_decades .. a_max
strategies: list = ["goals", "gos-ls", "gols-i", "gols-back", "sls-armijo"]  # line searches
repeats: int = 30  # repeated iterations from the same point for the spread of accepted steps
sensitivity_fe: int = 400  # FE budget of each sensitivity run (0: skip the study)
sensitivity_seeds: list = [0, 1]  # seeds of the sensitivity runs
sensitivity: dict = {
    "goals": {"tolerance": [0.3, 0.6, 0.9], "max_refinements": [0, 1, 3, 6]},
    "gos-ls": {"max_extrapolation": [2.0, 10.0, 50.0]},
}  # line search -> constant -> values tried (other constants keep their defaults)
threads: int = 1  # torch CPU threads

# %%
# Validate the parameters and derive everything computed from them.
from pathlib import Path

from goals.line_probe import SEARCHES
from goals.notebook_params import ParameterError, check, check_list, check_mapping
from goals.notebook_params import output_root as resolve_root

profile = check("profile", profile, str)
if not profile:
    raise ParameterError("parameter 'profile' must not be empty")
model_name = check("model_name", model_name, str, choices=("mlp", "cnn"))
seed = check("seed", seed, int, min_value=0)
batch_size = check("batch_size", batch_size, int, min_value=1, max_value=1437)
warmup_fe = check("warmup_fe", warmup_fe, int, min_value=0)
grid_points = check("grid_points", grid_points, int, min_value=3)
grid_decades = check("grid_decades", grid_decades, float, min_value=0.5, max_value=12.0)
strategies = check_list("strategies", strategies, str, choices=list(SEARCHES), min_length=1,
                        unique=True)
repeats = check("repeats", repeats, int, min_value=1)
sensitivity_fe = check("sensitivity_fe", sensitivity_fe, int, min_value=0)
sensitivity_seeds = check_list("sensitivity_seeds", sensitivity_seeds, int, min_value=0,
                               unique=True)
sensitivity = check_mapping("sensitivity", sensitivity, keys=[s for s in SEARCHES])
OPTIMIZER_CONSTANTS = {  # the constants of goals.GOALS a sensitivity study may vary
    "tolerance": float, "max_refinements": int, "max_evaluations": int, "growth": float,
    "max_extrapolation": float, "curvature": float, "sufficient_decrease": float,
    "backtrack": float, "reset_factor": float, "max_update_norm": float,
}
for strategy_id, constants in sensitivity.items():
    check_mapping(f"sensitivity[{strategy_id!r}]", constants, keys=list(OPTIMIZER_CONSTANTS))
    for constant, values in constants.items():
        sensitivity[strategy_id][constant] = check_list(
            f"sensitivity[{strategy_id!r}][{constant!r}]", values, OPTIMIZER_CONSTANTS[constant],
            min_length=1, unique=True)
threads = check("threads", threads, int, min_value=1)

profile_name = Path(profile).stem  # a profile may be given as a path to its YAML file
out_dir = resolve_root(output_root) / "figures" / profile_name
out_dir.mkdir(parents=True, exist_ok=True)
print(f"writing to {out_dir}")

# %% [markdown]
# ## Set-up: data, model, and a point reached by training

# %%
import logging
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from goals import plotting
from goals.closures import BatchSampler
from goals.data import load_dataset
from goals.line_probe import LineProbe, full_loss, train_with_goals
from goals.models import build_model
from goals.tables import provenance, write_table

logging.getLogger("goals").setLevel(logging.WARNING)
torch.set_num_threads(threads)
torch.manual_seed(seed)
plotting.use_theme()
started = time.perf_counter()

data = load_dataset("digits")
model = build_model(model_name, data.num_classes, data.in_channels, data.image_size)
sampler = BatchSampler(data.train_inputs, data.train_targets, batch_size, seed=seed)
config = {"profile": profile_name, "notebook": "01_line_search_behaviour", "dataset": "digits",
          "model": model_name, "seed": seed, "batch_size": batch_size, "warmup_fe": warmup_fe,
          "repeats": repeats, "threads": threads}
info = provenance(config, made_by="notebooks/01_line_search_behaviour")

initial_step = 1e-2  # first trial of every search when there is no warm-up (no previous step)
if warmup_fe > 0:
    warmup = train_with_goals(model, F.cross_entropy, sampler, warmup_fe, direction="sgd",
                              line_search="goals")
    initial_step = warmup["step_sizes"][-1]  # the previous accepted step, as in training
train_loss, train_error = full_loss(model, F.cross_entropy, data.train_inputs,
                                    data.train_targets)
print(f"point after {warmup_fe} FEs of GOALS-SGD: training loss {train_loss:.4f}, "
      f"training error {train_error:.3f}; previous accepted step {initial_step:.3g}")

# %% [markdown]
# ## 1–2. `F` and `F'` along one line, and where each search lands
#
# The direction is steepest descent on one fresh mini-batch. *Static*: every evaluation uses
# that same batch. *Dynamic*: a fresh batch per evaluation. Vertical lines mark the step each
# line search accepts on this line (one search each, run in the same mode).

# %%
probe = LineProbe(model, F.cross_entropy, sampler)
derivative_at_zero = probe.use_steepest_descent()
a_max = probe.step_size_max
grid = np.geomspace(a_max * 10.0 ** -grid_decades, a_max, grid_points)
profiles = pd.concat([probe.profile(grid, mode) for mode in ("static", "dynamic")])
landings = pd.DataFrame([probe.search(s, mode, initial_step)
                         for mode in ("static", "dynamic") for s in strategies])

fig = plotting.plot_line_profiles(
    profiles, landings,
    title=f"digits / {model_name.upper()}: F and F' along d = -g (a_max = {a_max:.3g})")
plotting.save_figure(fig, out_dir / "ls_line_profile", info=info)
plt.show()


# %%
def sign_changes(frame: pd.DataFrame) -> int:
    """Number of sign changes of F' along the grid (a smooth line has one)."""
    signs = np.sign(frame.sort_values("step_size")["dF"].to_numpy())
    return int(np.sum(signs[1:] != signs[:-1]))


def local_minima(frame: pd.DataFrame) -> int:
    """Number of grid points where F is below both neighbours."""
    values = frame.sort_values("step_size")["F"].to_numpy()
    return int(np.sum((values[1:-1] < values[:-2]) & (values[1:-1] < values[2:])))


line_summary = pd.DataFrame([
    {"MBSS": mode, "local minima of F": local_minima(part),
     "sign changes of F'": sign_changes(part)}
    for mode, part in profiles.groupby("mbss", sort=False)])
print(line_summary.to_string(index=False))
print(landings[["mbss", "strategy", "step_size", "fe", "forward_evaluations",
                "criterion_met"]].to_string(index=False, float_format="%.4g"))

# %% [markdown]
# ## 3. Spread of accepted steps and FE cost over repeated iterations
#
# From the same point, each repeat draws a fresh batch for the direction and runs every search
# once under each MBSS mode along it. FEs are charged as the optimizer charges them: under
# dynamic MBSS the gradient at the start is reused from the previous step; under static MBSS one
# FE is spent at the start on the new batch; SLS-Armijo's forward-only evaluations are counted
# apart.

# %%
searches = probe.repeated_searches(strategies, ("static", "dynamic"), repeats, initial_step)
fig = plotting.plot_step_spread(
    searches, title=f"accepted steps over {repeats} repeated iterations from one point")
plotting.save_figure(fig, out_dir / "ls_step_spread", info=info)
plt.show()

fig = plotting.plot_fe_per_iteration(searches, value="fe", hue="mbss",
                                     title="FEs per line search (same point, repeated)")
fig.axes[0].set_ylabel("FEs per search")
plotting.save_figure(fig, out_dir / "ls_fe_per_search", info=info)
plt.show()

summary = (searches.groupby(["strategy", "mbss"], sort=False)
           .agg(median_step=("step_size", "median"), min_step=("step_size", "min"),
                max_step=("step_size", "max"), median_fe=("fe", "median"),
                mean_fe=("fe", "mean"), mean_forward=("forward_evaluations", "mean"),
                criterion_met=("criterion_met", "mean"))
           .reset_index())
summary["spread (max/min)"] = summary["max_step"] / summary["min_step"]
write_table(summary, out_dir / "ls_search_summary",
            f"Accepted step sizes and FEs of each line search over {repeats} repeated iterations "
            f"from one point of a digits {model_name.upper()} (criterion_met: share of searches "
            "whose acceptance condition held).", provenance_extra=config)
print(summary.to_string(index=False, float_format="%.4g"))

# %% [markdown]
# ## 4. Sensitivity to the constants that are our reading
#
# Each run trains a fresh network for `sensitivity_fe` FEs with the SGD direction and one line
# search, varying one of its constants while the others keep their defaults; the outcome is the
# final training loss on the whole training set (lower is better). Dotted lines mark the
# defaults.

# %%
import inspect

from goals.optimizer import GOALS

defaults = {name: parameter.default
            for name, parameter in inspect.signature(GOALS).parameters.items()}
rows = []
if sensitivity_fe > 0:
    for strategy_id, constants in sensitivity.items():
        line_search = "armijo" if strategy_id == "sls-armijo" else strategy_id
        for constant, values in constants.items():
            for value in values:
                for run_seed in sensitivity_seeds:
                    torch.manual_seed(run_seed)
                    net = build_model(model_name, data.num_classes, data.in_channels,
                                      data.image_size)
                    run_sampler = BatchSampler(data.train_inputs, data.train_targets,
                                               batch_size, seed=run_seed)
                    run = train_with_goals(net, F.cross_entropy, run_sampler, sensitivity_fe,
                                           direction="sgd", line_search=line_search,
                                           **{constant: value})
                    loss, error = full_loss(net, F.cross_entropy, data.train_inputs,
                                            data.train_targets)
                    rows.append({"strategy": strategy_id, "constant": constant, "value": value,
                                 "default": defaults[constant], "seed": run_seed,
                                 "final_train_loss": loss, "final_train_error": error,
                                 "iterations": run["iterations"], "fe": run["fe"]})
sensitivity_runs = pd.DataFrame(rows)
if not sensitivity_runs.empty:
    fig = plotting.plot_sensitivity(
        sensitivity_runs,
        title=f"SGD direction, {sensitivity_fe} FEs per run: final training loss "
              f"(median and range over {len(sensitivity_seeds)} seed(s))")
    plotting.save_figure(fig, out_dir / "ls_sensitivity", info=info)
    plt.show()
    table = (sensitivity_runs.groupby(["strategy", "constant", "value"], sort=False)
             .agg(default=("default", "first"), median_loss=("final_train_loss", "median"),
                  min_loss=("final_train_loss", "min"), max_loss=("final_train_loss", "max"),
                  median_iterations=("iterations", "median"))
             .reset_index())
    write_table(table, out_dir / "ls_sensitivity",
                f"Final training loss (median, min, max over {len(sensitivity_seeds)} seeds) of "
                f"SGD-direction runs after {sensitivity_fe} FEs as one constant of a line "
                "search is varied.",
                provenance_extra=config)
    print(table.to_string(index=False, float_format="%.4g"))

# %%
written = sorted(p.name for p in out_dir.glob("ls_*"))
print(f"{len(written)} files in {out_dir} after {time.perf_counter() - started:.1f} s:")
print(" ".join(written))
