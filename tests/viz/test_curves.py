"""Training curves from a metrics.jsonl."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("matplotlib", reason="plots need matplotlib (extra 'viz')")

from PIL import Image

from grit_fast.cli import main
from grit_fast.viz.curves import plot_curves, read_metrics_jsonl


def rows(n=7):
    return [
        {
            "step": s,
            "reward/mean": 1.0 + 0.1 * s,
            "reward/std": 0.2,
            "reward/answer_accuracy": 0.05 * s,
            "grounding_iou": None if s == 3 else 0.1 + 0.01 * s,
            "kl": 0.001 * s,
            "completion_length/mean": 200 - s,
            "zero_advantage_group_fraction": 0.5,
        }
        for s in range(n)
    ]


def test_plot_writes_an_image(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows()) + "\n\n")
    out = plot_curves(path, tmp_path / "sub" / "curves.png", title="run")
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 800 and image.size[1] > 300


def test_only_present_panels_are_drawn(tmp_path):
    few = plot_curves([{"step": 0, "kl": 0.1}, {"step": 1, "kl": 0.2}], tmp_path / "kl.png")
    many = plot_curves(rows(), tmp_path / "all.png")
    assert Image.open(few).size[0] < Image.open(many).size[0]


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no plottable metric"):
        plot_curves([{"step": 0, "loss_name": "x"}], tmp_path / "x.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 0}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected a JSON object"):
        read_metrics_jsonl(bad)
    with pytest.raises(FileNotFoundError, match="metrics file not found"):
        read_metrics_jsonl(tmp_path / "missing.jsonl")


def test_cli(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows()))
    assert main(["plot", "--metrics", str(path), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").is_file()
    assert main(["plot", "--metrics", str(tmp_path / "none.jsonl"), "--out", "x.png"]) == 1
    assert "metrics file not found" in capsys.readouterr().out
