"""Stub of grit_fast._C, the compiled core. Private: call it through the grit_fast package.

One section per binding file of csrc/ (module.cpp, bindings_trace.cpp, bindings_rewards.cpp,
bindings_judge.cpp, bindings_geometry.cpp).
"""

import numpy as np

# module.cpp
__version__: str
unicode_version: str

def default_num_threads() -> int:
    """Threads a batch call uses when num_threads <= 0 (GRIT_FAST_NUM_THREADS, else all cores)."""

def build_info() -> dict[str, object]:
    """Compiler and flags the extension was built with."""

# bindings_trace.cpp
def parse_traces(
    texts: list[str], num_threads: int = 0
) -> tuple[
    list[tuple],
    tuple[np.ndarray, np.ndarray, np.ndarray],
    tuple[np.ndarray, np.ndarray, np.ndarray],
]:
    """(rows, boxes, answer_boxes). rows[i] = (think, rethink, answer (str or None), labels (tuple of
    str or None), tag counts (dict), tag order (tuple), official box count, answer labels (tuple of
    str or None)); boxes and answer_boxes = (coords (K,4) float64, character spans (K,2) int64,
    offsets (N+1,) int64): trace i owns rows offsets[i]:offsets[i+1]. GIL released."""

# bindings_rewards.cpp
def score_rewards(
    completions: list[str],
    answers: list[str],
    datasets: list[str],
    ids_flat: np.ndarray | None,
    ids_offsets: np.ndarray | None,
    preset: str,
    pad_token_id: int | None,
    int_max_str_digits: int,
    num_threads: int = 0,
    rule_judge: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[str], np.ndarray | None]:
    """Components of preset 'official' or 'paper', the indices (J,) the judge must score, their J
    predicted answers, and with ``rule_judge`` the rule judge's J scores (answer_accuracy then holds
    them binarised; without it answer_accuracy is left at 0 and the scores are None). GIL released."""

def pack_ids(rows: object) -> tuple[np.ndarray, np.ndarray] | None:
    """Rows that are lists or tuples of int (in a list or tuple) -> (flat int64 (T,), offsets int64
    (N + 1,)), or None when a row is not a list or tuple or an id not an int in int64 range."""

def bleu1(reference: str, hypothesis: str) -> float:
    """NLTK sentence BLEU-1 (no smoothing) of two texts after the official normalisation."""

def python_int(text: str, max_str_digits: int) -> int | None:
    """Python's int(text) (saturated to about 2**62), or None where int() raises ValueError."""

# bindings_judge.cpp
def rule_scores(answers: list[str], predictions: list[str], num_threads: int = 0) -> np.ndarray:
    """RuleJudge's scores, float64 (N,), of N answer/prediction pairs. GIL released."""

# bindings_geometry.cpp
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of finite C-contiguous float64 boxes a (N, 4), b (M, 4) -> (N, M)."""

def grounding_iou_batch(
    pred_boxes: np.ndarray,
    pred_offsets: np.ndarray,
    gt_boxes: np.ndarray,
    gt_offsets: np.ndarray,
    num_threads: int = 0,
) -> np.ndarray:
    """IoU of the union of each sample's predicted boxes with the union of its gt boxes, exact
    areas: float64 (N,), NaN without gt, 0.0 without prediction. Boxes (P, 4)/(G, 4) float64,
    offsets int64 (N + 1,). GIL released."""
