"""The README's numbers and links: its per-machine table says what results/machines.md records,
and every file it links to exists. (The docs include generated tables; the README is written by
hand, so these tests keep it honest.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table_rows(text: str, header_start: str) -> list[list[str]]:
    """The cells of each body row of the first markdown table whose header starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:  # header, separator
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def row_cells(text: str, row_start: str) -> list[str]:
    """The cells of the first table row in ``text`` that starts with ``row_start``."""
    row = next(line for line in text.splitlines() if line.startswith(row_start))
    return [cell.strip() for cell in row.strip("| ").split("|")]


def machine_class(first_cell: str) -> str:
    """``AVX2, no bf16 (AMD EPYC, ...)`` -> ``AVX2, no bf16``; the README writes ``CUDA, NVIDIA ...``."""
    return first_cell.split(" (")[0].replace("CUDA, ", "CUDA ")


def test_the_readme_machine_table_says_what_results_machines_md_records():
    readme = table_rows((ROOT / "README.md").read_text(), "| machine class | s6lab train img/s")
    recorded = table_rows((ROOT / "results" / "machines.md").read_text(), "| machine class | precision (auto)")
    recorded_by_class = {machine_class(row[0]): row for row in recorded}
    assert [machine_class(row[0]) for row in readme] == list(recorded_by_class), \
        "the README lists other machine classes than results/machines.md, or in another order"
    for row in readme:
        want = recorded_by_class[machine_class(row[0])]
        # s6lab img/s, typical img/s, ratio with its range: README columns 1-3, machines.md columns 2-4
        assert row[1:4] == want[2:5], f"README row {row[0]!r} differs from results/machines.md"


def test_every_file_the_readme_links_to_exists():
    text = (ROOT / "README.md").read_text()
    links = [target for target in re.findall(r"\]\(([^)\s]+)\)", text)
             if not re.match(r"[a-z]+:", target) and not target.startswith("#")]
    assert links, "no relative links found: the pattern no longer matches the README"
    missing = [target for target in links if not (ROOT / target.split("#")[0]).exists()]
    assert not missing, f"the README links to files that do not exist: {missing}"


def seconds_to_target(recorded: str) -> dict[str, list[int]]:
    """Each setting's per-seed seconds to 99.4% in a benchmarks/results table (the last column;
    ``-``: none), e.g. ``{"typical-w0": [549], "typical-w2": [], "s6lab": [186, 193, 203, 195, 203]}``."""
    seconds = {}
    for line in recorded.splitlines():
        if line.startswith(("| s6lab |", "| typical")):
            cells = [cell.strip() for cell in line.strip("| ").split("|")]
            seconds[cells[0]] = [int(s) for s in re.findall(r"\d+", cells[-1].split("(")[0])]
    return seconds


def test_the_readme_speedrun_times_are_the_recorded_ones():
    seconds = seconds_to_target((ROOT / "benchmarks" / "results" / "speedrun-avx2-no-bf16.md").read_text())["s6lab"]
    median = sorted(seconds)[len(seconds) // 2]
    assert f"**{min(seconds)}-{max(seconds)} s, median {median} s**" in (ROOT / "README.md").read_text()


def test_the_readme_cites_the_latest_load_run():
    """The README's lists of bench-load results end with the run in benchmarks/results/load.md: fixed
    PASSIVE's loaded / quiet share, and following the load's round-by-round ratio to fixed PASSIVE."""
    recorded = (ROOT / "benchmarks" / "results" / "load.md").read_text()
    share = row_cells(recorded, "| s6lab (PASSIVE) |")[3]  # loaded / quiet
    ratio = row_cells(recorded, "| s6lab following the load")[5].split()[0]  # round by round against fixed PASSIVE
    readme = " ".join((ROOT / "README.md").read_text().split())  # joined across line breaks
    passive = re.search(r"runs in \w+ sessions: ([\d%, and]+) of the quiet throughput", readme)
    following = re.search(r"against two fixed threads it measured ([\d.x, and]+) the loaded rate", readme)
    assert passive and following, "the README no longer lists the bench-load runs in the form this test reads"
    assert passive.group(1).split()[-1] == share and following.group(1).split()[-1] == ratio


def test_the_readme_load_table_ends_with_the_latest_avx512_run():
    """The AVX-512 row of the README's load table: its last fixed share, following share and ratio are
    those of benchmarks/results/load-avx512-bf16.md (the run before it is kept beside it)."""
    recorded = (ROOT / "benchmarks" / "results" / "load-avx512-bf16.md").read_text()
    following = row_cells(recorded, "| s6lab following the load")
    row = next(r for r in table_rows((ROOT / "README.md").read_text(), "| machine | OpenMP's default")
               if r[0].startswith("AVX512"))
    last = [cell.replace("*", "").split("(")[0].split(",")[-1].strip() for cell in row[1:]]
    assert last == [row_cells(recorded, "| OpenMP default |")[3], row_cells(recorded, "| s6lab (PASSIVE) |")[3],
                    following[3], following[5].split()[0]]


def test_the_readme_time_to_99_4_table_says_what_the_benchmarks_recorded():
    """Each row of the time table whose source is a benchmark file: the s6lab seconds cited are that
    file's per-seed times (their min, max and median at least), and the typical loop's is its faster one."""
    rows = table_rows((ROOT / "README.md").read_text(), "| machine class | recipe | seeds | s6lab |")
    checked = 0
    for row in rows:
        source = re.search(r"\]\((benchmarks/results/[^)]+)\)", row[-1])
        recorded = (ROOT / source.group(1)).read_text() if source else ""
        if "| s6lab |" not in recorded:
            continue
        seconds = seconds_to_target(recorded)
        mine = seconds.pop("s6lab")
        median = sorted(mine)[len(mine) // 2]
        cited = {int(n) for n in re.findall(r"\d+", re.sub(r"epoch \d+", "", row[3]))}
        assert {min(mine), max(mine), median} <= cited <= set(mine), \
            f"README time row {row[0]!r} cites {sorted(cited)} s; {source.group(1)} records {mine}"
        typical = min(s for times in seconds.values() for s in times)
        assert row[4] == f"{typical} s", f"README time row {row[0]!r}: the faster typical loop took {typical} s"
        checked += 1
    assert checked >= 2, "fewer time rows than expected link to a benchmark file"
