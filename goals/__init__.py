"""GOALS: gradient-only approximations for line searches."""
