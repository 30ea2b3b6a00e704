"""Reliability suite helpers: a light station process, a zygote that forks it, invariant checks."""
