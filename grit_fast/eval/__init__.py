"""Evaluation internals: prediction records (:mod:`.predictions`) and metrics (:mod:`.metrics`).

The public entry points are :func:`grit_fast.evaluate` and :func:`grit_fast.score_predictions`.
"""
