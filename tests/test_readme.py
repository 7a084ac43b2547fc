"""README's API block runs as written, and its two set-up commands are the ones CI relies on."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _block_after(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(marker)
    match = re.compile(r"```(?:python|bash)\n(.*?)```", re.S).search(text, start)
    assert match, f"no code block after {marker!r} in README.md"
    return match.group(1)


def test_api_block_runs(capsys):
    code = _block_after("<!-- readme:run")
    exec(compile(code, "README.md:api", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("yes [[12.0, 30.0, 88.0, 120.0], [140.0, 40.0, 260.0, 150.0]]")
    assert out[2] == "1.0"  # grounding IoU of two boxes whose union is the gt box


def test_setup_commands():
    text = README.read_text(encoding="utf-8")
    commands = re.findall(r"```bash\n(python3 -m venv .*?)\n```", text)
    assert len(commands) == 2, commands  # exactly two set-up commands
    main_job, tests = commands
    assert main_job.endswith("grit-fast demo")
    assert "pip install torch==" in main_job and "pip install torch==" in tests
    assert _block_after("<!-- ci:test-command -->").strip() == tests
    assert tests.endswith("python -m pytest")
