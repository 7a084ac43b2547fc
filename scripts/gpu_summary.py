"""One summary table of a scripts/gpu_check.sh run: the JUnit XML of its test runs and the
pytest-benchmark JSON of its benches, read from the folder the check wrote.

    python scripts/gpu_summary.py OUT_DIR

Tests: one row per test (passed / failed / skipped and why, seconds, recorded properties such as
the training step's time). Benches: one row per implementation in each group, its median time and
its ratio to ``eager`` in the same group, with the peak memory and GB/s it recorded. Exit status 1
when a test failed or a section did not finish (its ``.rc`` file is not 0).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SECTIONS = ("kernels", "train_step", "bench_loss", "bench_fused_linear")


def test_rows(path: Path) -> list[tuple[str, str, str, str]]:
    """(test, status, seconds, notes) of each test case in a JUnit XML file."""
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?")
        status, notes = "passed", []
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                status = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
                notes.append(
                    (found.get("message") or "").splitlines()[0][:60]
                    if found.get("message")
                    else ""
                )
        for prop in case.iter("property"):
            notes.append(f"{prop.get('name')}={prop.get('value')}")
        rows.append(
            (name, status, f"{float(case.get('time', 0)):.1f}", "; ".join(n for n in notes if n))
        )
    return rows


def bench_rows(path: Path) -> list[tuple[str, str, str, str, str]]:
    """(group, implementation, median ms, x eager, notes) of each benchmark in a JSON file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    by_group: dict[str, list[dict]] = {}
    for bench in data.get("benchmarks", []):
        by_group.setdefault(bench.get("group") or "", []).append(bench)
    rows = []
    for group, benches in sorted(by_group.items()):
        medians = {_provider(b): b["stats"]["median"] for b in benches}
        eager = medians.get("eager")
        for bench in benches:
            provider, median = _provider(bench), bench["stats"]["median"]
            ratio = f"{eager / median:.2f}" if eager else "-"
            info = bench.get("extra_info", {})
            notes = [
                f"{key}={info[key]}"
                for key in info
                if key.startswith("peak") or key == "GB/s"
                if key != "peak_method"
            ]
            rows.append((group, provider, f"{median * 1e3:.2f}", ratio, ", ".join(notes)))
    return rows


def _provider(bench: dict) -> str:
    params = bench.get("params") or {}
    return str(params.get("provider") or bench.get("name", "?").split("[")[0])


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    line = lambda row: "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = Path(argv[0])
    failed = False
    print(f"GPU check summary ({out})")
    for section in SECTIONS:
        rc_file = out / f"{section}.rc"
        rc = rc_file.read_text().strip() if rc_file.is_file() else "not run"
        state = {"0": "ok", "124": "TIMED OUT", "not run": "not run"}.get(rc, f"exit {rc}")
        failed |= rc != "0"
        print(f"\n== {section}: {state}")
        xml = out / f"{section}.xml"
        if xml.is_file():
            rows = test_rows(xml)
            failed |= any(r[1] in ("FAILED", "ERROR") for r in rows)
            print(table(("test", "status", "s", "notes"), rows))
        bench = out / f"{section}.json"
        if bench.is_file():
            print(
                table(
                    ("group", "implementation", "median ms", "x eager", "notes"), bench_rows(bench)
                )
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
