"""The tables the reward package decides by: tags, presets and their components, constants.

Shared by the reference twins, the compiled-core bridge and the scorer; imports nothing from the
package. The compiled core (``csrc/``) keeps the same values in its own tables.
"""

from __future__ import annotations

import re

# The tags of a trace, in the order a well-formed one writes them (docs/method.md §1).
TAGS = ("<think>", "</think>", "<rethink>", "</rethink>", "<answer>", "</answer>")

# The box pattern of the official reward: integers only, Python `re` (Unicode) semantics (docs/method.md §1).
OFFICIAL_BOX_PATTERN = re.compile(r"\b\d+,\s*\d+,\s*\d+,\s*\d+\b")

# Each preset's components, in the order RewardBatch.components lists them (docs/method.md §2).
COMPONENTS: dict[str, tuple[str, ...]] = {
    "official": (
        "answer_accuracy",
        "answer_bleu",
        "answer_format",
        "repetition",
        "grounding_format",
        "think_format",
    ),
    "paper": ("format", "count", "answer_accuracy", "answer_bleu"),
}
PRESETS = tuple(COMPONENTS)

PAD_TOKEN_ID = 151643  # Qwen2.5's <|endoftext|>: completion ids are cut at its first occurrence
NGRAM = 8  # the repetition reward compares each 8-gram with the next
BLEU_WEIGHT = 0.1  # answer_bleu = 0.1 x BLEU-1
COUNTING_DATASETS = ("tallyqa",)  # the paper preset's count reward applies to these
