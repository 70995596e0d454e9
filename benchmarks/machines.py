"""What to expect on each machine class: one row per class measured, kept across machines.

Runs ``benchmarks/throughput.py`` on this machine (the s6lab trainer against the typical
loop, round-robin, in one run), keeps its full output as
``benchmarks/results/throughput-<class>.md``, and stores one row per machine class in
``results/machines.json``: a later run on the same class replaces that class's row, runs on
other classes add theirs. ``results/machines.md`` is rendered from all rows.

    python benchmarks/machines.py                     # measure this machine (a few minutes)
    python benchmarks/machines.py --device cuda       # the CUDA row, on a machine with a GPU
    python benchmarks/machines.py --import benchmarks/results/throughput.md   # an earlier recording
    python benchmarks/machines.py --render            # only re-render the table

A machine class is the CPU's SIMD capability and whether it has native bf16 (``AVX2, no
bf16``; ``AVX512, bf16``), or the GPU's name: the things that decide the speed and the
precision ``auto`` picks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

from _args import Parser, at_least, exit_if_failed, refuse, run_main

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "results" / "machines.json"
TABLE = ROOT / "results" / "machines.md"


def slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


def class_results_file(prefix: str, machine_class: str | None = None) -> Path:
    """``benchmarks/results/PREFIX-CLASS.md``: where a benchmark records a machine class, this machine's where
    None (a capped CPU's class names the cap, so a preview never overwrites a real machine's file)."""
    if machine_class is None:
        from s6lab.hardware import machine_info

        machine_class = machine_info().machine_class
    return ROOT / "benchmarks" / "results" / f"{prefix}-{slug(machine_class)}.md"


def results_file(prefix: str, home_class: str | None = None) -> Path:
    """The default file of a benchmark whose first recording is ``benchmarks/results/PREFIX.md``: that file on
    an uncapped CPU of ``home_class`` (any uncapped CPU where None), else `class_results_file`, so neither a
    capped preview, nor a run with its bf16 switched off (``S6LAB_NATIVE_BF16=0``), nor another machine class
    replaces it."""
    from s6lab.hardware import bf16_switched_off, effective_caps, machine_info

    machine_class = machine_info().machine_class
    if effective_caps() or bf16_switched_off() or home_class not in (None, machine_class):
        return class_results_file(prefix, machine_class)
    return ROOT / "benchmarks" / "results" / f"{prefix}.md"


def parse_throughput(text: str) -> dict:
    """The raw JSON block and the header facts of a ``throughput.py --out`` file."""
    try:
        raw = json.loads(text.split("```json")[1].split("```")[0])
    except (IndexError, json.JSONDecodeError):
        refuse("that file has no raw JSON block; pass a file written by `python benchmarks/throughput.py --out FILE`",
               "benchmarks/machines.py")
    command = re.search(r"Command: `([^`]*)`", text)
    torch_version = re.search(r"torch (\S+?)[,;]", text)
    capability = re.search(r"capability (\w+)", text)
    threads = re.search(r"(\d+) threads", text)
    cpu = re.search(r"Machine: (.+?) \(", text)
    gpu = re.search(r"device cuda\S* \(([^)]+)\)", text)
    host = re.search(r"host CPU (.+?), torch", text)
    machine = re.search(r"^Machine: .*$", text, re.M)  # a capped CPU's class: "(AVX2, no bf16, capped on AVX512: ..."
    capped = re.search(r", (capped(?: on \w+)?)[:)]", machine.group(0)) if machine else None
    return {"raw": raw, "command": command.group(1) if command else None,
            "torch": torch_version.group(1) if torch_version else None,
            "capability": capability.group(1) if capability else None,
            "threads": int(threads.group(1)) if threads else None,
            "cpu_model": cpu.group(1) if cpu else None, "gpu": gpu.group(1) if gpu else None,
            "host_cpu": host.group(1) if host else None, "capped": capped.group(1) if capped else None}


def row_from(parsed: dict, *, machine_class: str, cpu_model: str | None, source: str, command: str,
             precision: str) -> dict:
    """One table row from a parsed throughput recording."""
    results = parsed["raw"]["results"]
    ours = results["s6lab"]
    typical = max((results[s] for s in results if s.startswith("typical")), key=lambda r: r["train_ips"])
    runs = zip(ours["train_ips_runs"], *(results[s]["train_ips_runs"] for s in results if s.startswith("typical")))
    ratios = [a / max(rest) for a, *rest in runs]
    seconds_per_epoch = 60_000 / ours["train_ips"] + 10_000 / ours["eval_ips"]
    return {
        "machine_class": machine_class, "cpu_model": cpu_model or "not recorded",
        "torch": parsed["torch"], "threads": parsed["threads"], "precision": precision,
        "s6lab_img_s": round(ours["train_ips"]), "typical_img_s": round(typical["train_ips"]),
        "ratio_median": round(statistics.median(ratios), 2),
        "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)], "rounds": len(ratios),
        "seconds_per_epoch": round(seconds_per_epoch, 1),
        "fp32_peak_gflops": round(parsed["raw"].get("peaks", {}).get("fp32") or 0),
        "eval_img_s": round(ours["eval_ips"]), "date": recorded_on(source),
        "source": source, "command": command,
    }


def recorded_on(source: str) -> str:
    """The date the recording was committed; today for a fresh one (not committed yet, or changed since: a
    measurement that just overwrote the file of an earlier one)."""
    changed = subprocess.run(["git", "status", "--porcelain", "--", source], capture_output=True, text=True,
                             cwd=ROOT)
    if changed.stdout.strip():
        return date.today().isoformat()
    done = subprocess.run(["git", "log", "-1", "--format=%cs", "--", source], capture_output=True, text=True,
                          cwd=ROOT)
    return done.stdout.strip() or date.today().isoformat()


def load_store() -> dict[str, dict]:
    return json.loads(STORE.read_text()) if STORE.exists() else {}


def render(rows: dict[str, dict], default_epochs: int) -> str:
    lines = ["# What to expect on each machine class", "",
             "One row per machine class measured; `make machines` measures the machine it runs on and "
             "replaces that class's row. Throughput is the median of round-robin rounds in one run of "
             "`benchmarks/throughput.py` (the s6lab trainer and the typical DataLoader loop, each in its own "
             "process); the ratio is taken round by round. Seconds per epoch = 60k / train img/s + 10k / "
             "eval img/s, on an otherwise idle machine; a default `make train` run is that times the "
             "default epochs. Run `s6lab doctor` to measure your own machine in about ten seconds.", "",
             "<!-- --8<-- [start:table] -->",
             "| machine class | precision (auto) | s6lab train img/s | typical loop img/s | ratio (median, range) | "
             "s/epoch | default run |",
             "|---|---|---:|---:|---|---:|---:|"]
    ordered = sorted(rows.values(), key=lambda r: r["machine_class"])
    for r in ordered:
        minutes = r["seconds_per_epoch"] * default_epochs / 60
        lines.append(
            f"| {r['machine_class']} ({r['cpu_model']}, {threads(r)}torch {r['torch']}) | "
            f"{r['precision']} | {r['s6lab_img_s']:,} | {r['typical_img_s']:,} | "
            f"{r['ratio_median']:.2f}x ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f}x) | "
            f"{r['seconds_per_epoch']:.0f} | {minutes:.1f} min ({default_epochs} epochs) |")
    details = ["", "| machine class | CPU / GPU | fp32 matmul GFLOP/s | torch | threads | rounds | recorded | source |",
               "|---|---|---:|---|---:|---:|---|---|"]
    details += [f"| {r['machine_class']} | {r['cpu_model']} | {r.get('fp32_peak_gflops', 0) or '-'} | {r['torch']} | "
                f"{r['threads'] or '-'} | {r['rounds']} | {r['date']} | "
                f"[{Path(r['source']).name}]({os.path.relpath(ROOT / r['source'], TABLE.parent)}) |" for r in ordered]
    if any("capped" in r["machine_class"] for r in ordered):  # said inside the table's snippet: the tutorials show it
        lines += ["", "A row marked *capped* is not a machine of its own: a bigger CPU running an AVX2 CPU's "
                  "instructions (`make machines PREVIEW=avx2`), so it trains in fp32 with the same kernels. It "
                  "previews the class; a laptop's cores, caches and memory set its own seconds."]
    lines += ["<!-- --8<-- [end:table] -->", "", "Where each row was measured:", *details, "", "Commands, per row:", ""]
    lines += [f"- {r['machine_class']}: `{r['command']}`"
              for r in sorted(rows.values(), key=lambda r: r["machine_class"])]
    return "\n".join(lines) + "\n"


def threads(row: dict) -> str:
    """``2 threads, `` for a CPU row; nothing for a GPU row, whose recording names no thread count."""
    return f"{row['threads']} threads, " if row.get("threads") else ""


def save(rows: dict[str, dict]) -> None:
    from s6lab._io import atomic_write_text
    from s6lab.train import TrainConfig

    atomic_write_text(STORE, json.dumps(rows, indent=1, sort_keys=True) + "\n")
    atomic_write_text(TABLE, render(rows, TrainConfig().epochs))
    print(TABLE.read_text())


def read_recording(parser: argparse.ArgumentParser, path: Path) -> str:
    """The text of the ``--import`` file, or a one-line refusal saying what that path is instead."""
    which = "pass a file written by `python benchmarks/throughput.py --out FILE`"
    try:
        return path.read_text()
    except IsADirectoryError:
        parser.error(f"--import {path} is a folder; {which}")
    except FileNotFoundError:
        parser.error(f"--import {path}: no such file; {which}")
    except UnicodeDecodeError:
        parser.error(f"--import {path} is not a text file; {which}")
    except OSError as e:
        parser.error(f"--import {path}: cannot read it ({e.strerror}); {which}")


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--repeats", type=int, default=7, help="round-robin rounds of throughput.py")
    parser.add_argument("--import", dest="import_file", type=Path,
                        help="take an earlier throughput.py recording instead of measuring")
    parser.add_argument("--cpu-model", help="with --import: the CPU model, when that file does not name it")
    parser.add_argument("--render", action="store_true", help="only re-render results/machines.md")
    args = parser.parse_args()
    at_least(parser, 1, args, "--repeats")
    if args.cpu_model and not args.import_file:
        parser.error("--cpu-model names the CPU of an --import file; a measurement here names this machine's itself")
    text = read_recording(parser, args.import_file) if args.import_file else None
    from s6lab.hardware import recorded_command
    command = recorded_command("benchmarks/machines.py", sys.argv[1:])
    rows = load_store()
    if args.render:
        save(rows)
        return

    import torch

    from s6lab.hardware import machine_info, resolve_precision
    from s6lab.train import resolve_device

    if args.import_file:
        parsed = parse_throughput(text)
        if not args.import_file.resolve().is_relative_to(ROOT):
            parser.error(f"--import {args.import_file}: copy it into benchmarks/results/ first (the table links to "
                         "its source, so it must be in the repository)")
        peaks = parsed["raw"].get("peaks", {})
        # native bf16 shows as a bf16 matmul peak well above fp32; emulated bf16 is far below it
        bf16 = bool(peaks.get("bf16")) and peaks["bf16"] > 1.5 * peaks["fp32"]
        capped = f", {parsed['capped']}" if parsed["capped"] else ""  # a capped CPU stays labelled as one
        machine_class = f"CUDA {parsed['gpu']}" if parsed["gpu"] else \
            f"{parsed['capability']}, {'bf16' if bf16 else 'no bf16'}{capped}"
        cpu_model = f"host CPU {parsed['host_cpu']}" if parsed["gpu"] and parsed["host_cpu"] else \
            parsed["cpu_model"] or args.cpu_model
        row = row_from(parsed, machine_class=machine_class, cpu_model=cpu_model,
                       source=str(args.import_file.resolve().relative_to(ROOT)),
                       command=parsed["command"] or command, precision="bf16" if bf16 else "fp32")
    else:
        device = resolve_device(args.device)  # CUDA asked for and missing: a ConfigError, one line (run_main)
        info = machine_info(device)
        out = class_results_file("throughput", info.machine_class).relative_to(ROOT)
        run = [sys.executable, "benchmarks/throughput.py", "--device", str(device), "--repeats", str(args.repeats),
               "--out", str(out)]
        exit_if_failed(subprocess.run(run, cwd=ROOT).returncode)
        parsed = parse_throughput((ROOT / out).read_text())
        row = row_from(parsed, machine_class=info.machine_class,
                       cpu_model=f"host CPU {info.cpu_model}" if device.type == "cuda" else info.cpu_model,
                       source=str(out), command=command,
                       precision=resolve_precision("auto", device).precision)
        row["torch"] = torch.__version__
    rows[row["machine_class"]] = row
    save(rows)


if __name__ == "__main__":
    run_main(main)
