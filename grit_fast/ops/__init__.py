"""Loss ops for GRPO-GR: group advantages fused with the clipped policy-gradient + KL loss, and
log-probs from logits. Each public function runs a Triton kernel where it applies (CUDA tensors, or
CPU tensors under ``TRITON_INTERPRET=1``) and its plain-torch twin in :mod:`grit_fast.ops.reference`
otherwise. Importing this package imports torch but never triton.
"""

from grit_fast.ops.grpo_loss import group_advantages, grpo_loss
from grit_fast.ops.logprob import selective_log_softmax
from grit_fast.ops.loss_from_logits import grpo_loss_from_logits
from grit_fast.ops.types import LossOutput

__all__ = [
    "LossOutput",
    "group_advantages",
    "grpo_loss",
    "grpo_loss_from_logits",
    "selective_log_softmax",
]
