"""The embedded default (``grit-fast demo``): synthetic data, a tiny VLM, a warm start, GRPO-GR
through :class:`grit_fast.GritTrainer`, and a report of what changed on held-out images.

* :mod:`.run`       - :func:`run_demo`, the stages top to bottom, and the demo's settings;
* :mod:`.warmstart` - the supervised warm start (with a sampled softmax);
* :mod:`.report`    - bootstrap intervals, the summary table, the gallery and curves.
"""
