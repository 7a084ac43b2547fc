"""Token ids into the scorer: the compiled packer of int lists equals the numpy path, errors too."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grit_fast import _dispatch
from grit_fast.rewards.score import RewardScorer, pack_completion_ids

I64 = np.iinfo(np.int64)


def pack(rows, n=None, impl="fast"):
    """pack_completion_ids as RewardScorer.score calls it under backend `impl`."""
    with _dispatch.backend(impl):
        compiled = _dispatch.use_fast("score_rewards")
    return pack_completion_ids(rows, len(rows) if n is None else n, compiled)


def outcome(rows, impl):
    try:
        flat, offsets = pack(rows, impl=impl)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)
    assert flat.dtype == np.int64 and offsets.dtype == np.int64
    return flat.tolist(), offsets.tolist()


def test_int_lists_and_tuples(impl):
    rows = [[1, 2, 3], (), (I64.min, I64.max, 0), [151643] * 5]
    flat, offsets = pack(rows, impl=impl)
    assert flat.tolist() == [1, 2, 3, I64.min, I64.max, 0] + [151643] * 5
    assert offsets.tolist() == [0, 3, 3, 6, 11]
    flat, offsets = pack((), impl=impl)
    assert flat.tolist() == [] and offsets.tolist() == [0]


@pytest.mark.parametrize(
    ("rows", "error", "message"),
    [
        (
            [[1, 2**63]],
            ValueError,
            r"completion_ids\[0\]\[1\] is 9223372036854775808, beyond int64",
        ),
        ([[2**63]], ValueError, r"completion_ids\[0\]\[0\] is 9223372036854775808, beyond int64"),
        ([[1], [-(2**63) - 1]], ValueError, r"completion_ids\[1\]\[0\] is -9223372036854775809, "),
        ([[1], [2, 3.0]], TypeError, r"completion_ids\[1\]\[1\] is 3.0 \(float\); expected an int"),
        ([[True, False]], TypeError, r"completion_ids\[0\]\[0\] is True \(bool\)"),
        ([[1, [2, 3]]], TypeError, r"completion_ids\[0\]\[1\] is \[2, 3\] \(list\)"),
        ([[1, 2], [[3, 4]]], ValueError, r"completion_ids\[1\] must be 1-D, got shape \(1, 2\)"),
        (
            [np.array([2**63], dtype=np.uint64)],
            ValueError,
            r"\[0\] holds the id 9223372036854775808",
        ),
        ([np.array([1.0])], TypeError, r"completion_ids\[0\] must hold integer .* float64"),
        ([[1], [2]], ValueError, "completion_ids has 2 rows but completions has 3"),
    ],
)
def test_bad_rows_are_named(impl, rows, error, message):
    with pytest.raises(error, match=message):
        pack(rows, n=3 if "has 3" in message else None, impl=impl)


def test_rows_of_other_kinds_take_the_numpy_path(impl):
    torch = pytest.importorskip("torch", reason="torch rows are one accepted form")
    rows = [
        np.array([5, 6], dtype=np.int32),
        torch.tensor([7, 8]),
        [np.int16(9), 10],
        range(3),
        [True, 2],  # numpy reads a bool among ints as an int
    ]
    flat, offsets = pack(rows, impl=impl)
    assert flat.tolist() == [5, 6, 7, 8, 9, 10, 0, 1, 2, 1, 2]
    assert offsets.tolist() == [0, 2, 4, 6, 9, 11]
    flat, _ = pack(iter([[1, 2], [3]]), n=2, impl=impl)  # not a list: packed by numpy
    assert flat.tolist() == [1, 2, 3]


@pytest.mark.skipif(_dispatch.compiled_module() is None, reason="grit_fast._C is not built")
def test_compiled_packer_takes_only_int_lists():
    packer = _dispatch.compiled_module().pack_ids
    flat, offsets = packer([[1, 2], (3,)])
    assert flat.tolist() == [1, 2, 3] and offsets.tolist() == [0, 2, 3]
    for rows in ([[True]], [[1.0]], [[2**63]], [np.array([1])], [[np.int64(1)]], [3], "ab"):
        assert packer(rows) is None, rows


ID = st.one_of(
    st.integers(0, 151664),
    st.integers(-(2**70), 2**70),
    st.sampled_from([I64.min, I64.max, 2**63, -(2**63) - 1, 2**64]),
)
ODD = st.sampled_from([True, 1.5, np.int32(4), np.uint64(2**63 + 1), "7", None, [1, 2]])
ROW = st.one_of(
    st.lists(ID, max_size=20),
    st.lists(ID, max_size=20).map(tuple),
    st.lists(st.one_of(ID, ODD), max_size=6),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, max_size=6), as_tuple=st.booleans())
def test_compiled_and_numpy_packing_agree(rows, as_tuple):
    if _dispatch.compiled_module() is None:
        pytest.skip("grit_fast._C is not built")
    rows = tuple(rows) if as_tuple else rows
    assert outcome(rows, "fast") == outcome(rows, "reference")


def test_scores_equal_for_every_form(impl):
    torch = pytest.importorskip("torch", reason="torch tensors are one accepted form")
    phrase = "one two three four five six seven eight "
    texts = [phrase * 3, phrase * 2 + "x", "a b c d e f g h i"]
    padded = np.full((3, 40), 151643, dtype=np.int64)
    padded[0, :32] = list(range(8)) * 4
    padded[1, :20] = np.arange(20)
    padded[2, :3] = [1, 2, 3]
    lists = [list(range(8)) * 4 + [151643], [*range(20), 151643], [1, 2, 3, 151643]]
    got = [
        RewardScorer().score(texts, ["x"] * 3, ["vsr"] * 3, completion_ids=ids)
        for ids in (padded, torch.from_numpy(padded), lists, [tuple(r) for r in lists])
    ]
    # 0: 24 words, 16 pairs, 9 repeated; 32 ids all repeated. 1: 17 words, 9 pairs, 1 repeated.
    want = [((1 - 17 / 17) - (1 - (1 - 9 / 16))) * 0.5, (1 - (1 - (1 - 1 / 9))) * 0.5, 0.5]
    for batch in got:
        assert batch.components["repetition"].tolist() == want
