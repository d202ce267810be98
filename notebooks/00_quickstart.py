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
# # Quick start: GOALS on your own model
#
# GOALS sets the learning rate of every iteration with a line search that trusts only the *sign*
# of the directional derivative, so it works with a fresh mini-batch at every evaluation
# (dynamic mini-batch sub-sampling, MBSS). This notebook trains a small network of its own on a
# small data set of its own with `goals.GOALS`, in the few lines a user needs, and prints a
# compact table. It reproduces no figure of the paper and writes no file.
#
# What to copy into your own code:
#
# 1. a `goals.BatchSampler` over your tensors (a fresh batch per call),
# 2. a closure from `goals.make_closure` (it zeroes the gradients, runs forward and backward),
# 3. `goals.GOALS(model.parameters(), direction=..., line_search=...)` and
#    `optimizer.step(closure)`.
#
# There is no learning rate to choose: `optimizer.last_record["step_size"]` is the one the line
# search found. Budgets are counted in function evaluations (FEs): one forward and backward pass on
# one mini-batch.

# %% tags=["parameters"]
direction: str = "adam"  # search direction: "sgd", "rmsprop" or "adam"
line_search: str = "goals"  # "goals" (GOS-LSC), "gos-ls", "gols-i", "gols-back" or "armijo"
fe_budget: int = 600  # stop after this many function evaluations
batch_size: int = 64  # examples per mini-batch
report_every: int = 25  # print one table row every this many iterations
seed: int = 0  # seed of the data, the initial weights and the batch order

# %%
# Validate the parameters (papermill may inject strings where numbers were meant).
from goals.notebook_params import check

direction = check("direction", direction, str, choices=("sgd", "rmsprop", "adam"))
line_search = check("line_search", line_search, str,
                    choices=("goals", "gos-ls", "gols-i", "gols-back", "armijo"))
fe_budget = check("fe_budget", fe_budget, int, min_value=2)
batch_size = check("batch_size", batch_size, int, min_value=1, max_value=800)
report_every = check("report_every", report_every, int, min_value=1)
seed = check("seed", seed, int, min_value=0)

# %% [markdown]
# ## Your data and your model
#
# Two interleaved half-moons from scikit-learn stand in for your data; any tensors on any device
# work the same way.

# %%
import torch
from sklearn.datasets import make_moons
from torch import nn

import goals

torch.manual_seed(seed)
torch.set_num_threads(1)
points, labels = make_moons(n_samples=1000, noise=0.2, random_state=seed)
inputs = torch.tensor(points, dtype=torch.float32)
targets = torch.tensor(labels, dtype=torch.long)
train_x, train_y, test_x, test_y = inputs[:800], targets[:800], inputs[800:], targets[800:]

model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2))
loss_fn = nn.functional.cross_entropy

# %% [markdown]
# ## GOALS in three lines

# %%
sampler = goals.BatchSampler(train_x, train_y, batch_size=batch_size, seed=seed)
closure = goals.make_closure(model, loss_fn, sampler,
                             mbss="static" if line_search == "armijo" else "dynamic")
optimizer = goals.GOALS(model.parameters(), direction=direction, line_search=line_search)

print(f"{'iter':>5} {'FEs':>6} {'batch loss':>11} {'step size':>10} {'FEs/iter':>9} "
      f"{'criterion':>9}")
iteration = 0
while optimizer.total_evaluations < fe_budget:
    if line_search == "armijo":
        closure.resample()  # SLS-Armijo holds one batch per step (static MBSS)
    optimizer.step(closure)
    iteration += 1
    record = optimizer.last_record
    if iteration % report_every == 0 or optimizer.total_evaluations >= fe_budget:
        print(f"{iteration:>5} {optimizer.total_evaluations:>6} {record['loss']:>11.4f} "
              f"{record['step_size']:>10.3g} {record['evaluations']:>9} "
              f"{record['criterion_met']!s:>9}")

# %% [markdown]
# ## How good is the result?

# %%
with torch.no_grad():
    model.eval()
    test_error = (model(test_x).argmax(dim=1) != test_y).float().mean().item()
    train_loss = loss_fn(model(train_x), train_y).item()
    model.train()
print(f"after {optimizer.total_evaluations} FEs ({iteration} iterations): "
      f"training loss {train_loss:.4f}, test error {test_error:.3f}")
