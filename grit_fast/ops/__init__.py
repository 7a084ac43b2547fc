"""Loss ops for GRPO-GR: group advantages fused with the clipped policy-gradient + KL loss,
log-probs from logits, and both straight from hidden states and the lm_head without forming logits
(fused linear). Each public function runs a Triton kernel where it applies (CUDA tensors, or CPU
tensors under ``TRITON_INTERPRET=1``) and its plain-torch twin in :mod:`grit_fast.ops.reference`
otherwise (the fused-linear ops: a chunked torch path; their unfused twins live in
:mod:`grit_fast.ops.reference_fused_linear`). Importing this package imports torch but never triton.
"""

from grit_fast.ops.fused_linear import fused_linear_grpo_loss, fused_linear_log_probs
from grit_fast.ops.fused_linear_policy import PolicyLossOutput, fused_linear_policy_loss
from grit_fast.ops.grpo_loss import group_advantages, grpo_loss
from grit_fast.ops.logprob import selective_log_softmax
from grit_fast.ops.loss_from_logits import grpo_loss_from_logits
from grit_fast.ops.types import LossOutput

__all__ = [
    "LossOutput",
    "PolicyLossOutput",
    "fused_linear_grpo_loss",
    "fused_linear_log_probs",
    "fused_linear_policy_loss",
    "group_advantages",
    "grpo_loss",
    "grpo_loss_from_logits",
    "selective_log_softmax",
]
