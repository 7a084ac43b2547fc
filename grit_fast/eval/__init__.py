"""Evaluation: greedy generation, scoring and metrics.

* :mod:`.evaluation`     - :func:`grit_fast.evaluate` (generate, score, write) and
  :func:`grit_fast.score_predictions` (the model-free half);
* :mod:`.predictions`    - prediction records and their derived fields;
* :mod:`.metrics`        - ACC, grounding IoU, format compliance per dataset and overall;
* :mod:`.image_reliance` - how much each kind of token of a correct trace relies on the image.
"""
