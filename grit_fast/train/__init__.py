"""GRPO-GR training: one step reads rollout → score → advantage and loss → optimizer step.

* :mod:`.config`     - :class:`GritConfig`, every setting of a run (YAML/JSON, ``key=value``);
* :mod:`.trainer`    - :class:`GritTrainer`, the loop;
* :mod:`.rollout`    - G completions per prompt (:mod:`.sampling` draws the tokens);
* :mod:`.loss`       - the clipped PG + KL loss of a rollout (the :mod:`grit_fast.ops` kernels);
* :mod:`.setup`      - prompt order, optimizer and schedule, LoRA, DDP/FSDP2;
* :mod:`.metrics`, :mod:`.metrics_log` - what a step measures, and where it is written;
* :mod:`.checkpoint` - atomic checkpoints and resuming.

The public names are :class:`grit_fast.GritTrainer` and :class:`grit_fast.GritConfig`.
"""
