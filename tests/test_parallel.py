"""compare --jobs / --backend ray: the same runs as a serial comparison, trained at once.

The equality tests train two variants x two seeds for 2 epochs on a small real-MNIST subset (the
first 500 training and 200 test images). The serial reference trains with one thread, as every
worker does: a different thread count may change the last bits of a float sum, and the point here is
that running beside other trainings changes nothing.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from s6lab.comparison import compare
from s6lab.errors import ConfigError
from s6lab.parallel import JobResult, Workers, format_result, workers
from s6lab.runs import LOCK, RunError, run_dir

VARIANTS, SEEDS, EPOCHS = ["s6", "s6-gap"], [0, 1], 2
SUBSET = {"train_size": 500, "test_size": 200}


def histories(c):
    """Per variant, per seed: every epoch's numbers except the wall-clock times."""
    return [[[(e.epoch, e.train_loss, e.train_acc, e.test_loss, e.test_acc, e.lr) for e in run.history.epochs]
             for run in row.runs] for row in c.rows]


def need_ray():
    """Ray, or a skip that says why; under CI Ray is part of the dev extra, so a missing Ray fails."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        print("skipping: Ray is not installed (pip install 's6lab[ray]')")
        pytest.skip("Ray is not installed (pip install 's6lab[ray]')")
    return ray


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The reference: the grid trained one run after another in this process, with one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return compare(VARIANTS, seeds=SEEDS, epochs=EPOCHS, out=tmp_path_factory.mktemp("serial"), progress=False,
                       **SUBSET)
    finally:
        torch.set_num_threads(before)


@pytest.mark.mnist
def test_process_pool_gives_the_serial_histories(serial, tmp_path):
    done: list[JobResult] = []
    c = compare(VARIANTS, seeds=SEEDS, epochs=EPOCHS, out=tmp_path, progress=False, jobs=2, threads_per_job=1,
                on_job=done.append, **SUBSET)
    assert histories(c) == histories(serial)
    assert sorted(r.job.label for r in done) == ["s6 seed 0", "s6 seed 1", "s6-gap seed 0", "s6-gap seed 1"]
    finals = {f"{row.name} seed {run.config.seed}": run.history.final_acc for row in c.rows for run in row.runs}
    assert all(r.ok and r.final_acc == finals[r.job.label] for r in done)
    assert [run.meta["threads"] for row in c.rows for run in row.runs] == [1] * 4  # S6LAB_THREADS reached them
    line = format_result(done[0])
    assert line.startswith(done[0].job.label + ": final ") and "best" in line and line.endswith(" s")

    # finished runs are reused: nothing is trained again
    again: list[JobResult] = []
    reused = compare(VARIANTS, seeds=SEEDS, epochs=EPOCHS, out=tmp_path, jobs=2, on_job=again.append, **SUBSET)
    assert again == [] and histories(reused) == histories(serial)


@pytest.mark.mnist
def test_ray_gives_the_serial_histories(serial, tmp_path):
    ray = need_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        done: list[JobResult] = []
        c = compare(VARIANTS, seeds=SEEDS, epochs=EPOCHS, out=tmp_path, progress=False, backend="ray",
                    jobs="auto", threads_per_job=1, on_job=done.append, **SUBSET)
    finally:
        ray.shutdown()
    assert histories(c) == histories(serial)
    assert len(done) == 4 and all(r.ok for r in done)


def _kill_the_worker_training(run: Path, stop: threading.Event) -> None:
    """kill -9 the worker process that holds ``run``'s lock, as soon as one does (it is training it)."""
    lock = str(run / LOCK)
    while not stop.is_set():
        for child in multiprocessing.active_children():
            try:
                held = any(os.readlink(fd) == lock for fd in Path(f"/proc/{child.pid}/fd").iterdir())
            except OSError:  # the worker is starting or gone, or a descriptor closed while we looked
                continue
            if held:
                os.kill(child.pid, signal.SIGKILL)
                return
        time.sleep(0.02)


@pytest.mark.mnist
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the worker through /proc (Linux)")
def test_a_failed_or_killed_job_is_reported_by_job_and_the_others_finish(serial, tmp_path):
    """One job raises (a damaged run directory), one job's worker is killed with -9 mid-training; the
    third finishes, and the same call again resumes the killed run to the uninterrupted histories."""
    broken = run_dir(tmp_path, "s6", 2, EPOCHS, SUBSET["train_size"])
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json")  # that job fails in its worker
    stop = threading.Event()
    killer = threading.Thread(target=_kill_the_worker_training,
                              args=(run_dir(tmp_path, "s6", 1, EPOCHS, SUBSET["train_size"]), stop))
    killer.start()
    done: list[JobResult] = []
    try:
        with pytest.raises(RunError, match=r"2 of 3 trainings failed: s6 seed 1 .*WorkerDied: .*killed by "
                                           r"SIGKILL.*; s6 seed 2 .*RunError: .*not valid JSON.*"
                                           r"run the same command again"):
            compare(["s6"], seeds=[0, 1, 2], epochs=EPOCHS, out=tmp_path, progress=False, jobs=2,
                    threads_per_job=1, on_job=done.append, **SUBSET)
    finally:
        stop.set()
        killer.join()
    assert {r.job.label: r.ok for r in done} == {"s6 seed 0": True, "s6 seed 1": False, "s6 seed 2": False}
    assert "failed after" in format_result(next(r for r in done if not r.ok))
    assert multiprocessing.active_children() == []  # no worker outlives the call

    again: list[JobResult] = []  # the killed run resumes (or starts again); the finished one is reused
    c = compare(["s6"], seeds=[0, 1], epochs=EPOCHS, out=tmp_path, progress=False, jobs=2, threads_per_job=1,
                on_job=again.append, **SUBSET)
    assert [r.job.label for r in again] == ["s6 seed 1"] and again[0].ok
    assert histories(c) == histories(serial)[:1]


# ---- how many at once --------------------------------------------------------------------------------

@pytest.mark.parametrize("jobs, threads, backend, expected", [
    (2, None, "process", Workers(2, 4)),  # the cores shared out
    (2, 1, "process", Workers(2, 1)),
    ("auto", None, "process", Workers(8, 1)),
    ("auto", 2, "process", Workers(4, 2)),
    ("3", None, "process", Workers(3, 2)),
    ("auto", None, "ray", Workers(None, 1)),  # as many as the cluster fits
    (64, 2, "ray", Workers(64, 2)),  # a cluster is not limited by this machine's cores
])
def test_workers(jobs, threads, backend, expected):
    assert workers(jobs, threads, backend=backend, cores=8) == expected


@pytest.mark.parametrize("jobs, threads, match", [
    (0, None, "--jobs must be a positive number"),
    (-1, None, "--jobs must be a positive number"),
    ("many", None, "--jobs must be a positive number.*'many'"),
    (2, 0, "--threads-per-job must be 1 or more"),
    (9, 1, r"--jobs 9 x --threads-per-job 1 needs 9 cores, but this machine has 8 physical cores; use --jobs 8"),
    (4, 4, r"needs 16 cores.*use --jobs 2"),
])
def test_workers_refuses(jobs, threads, match):
    with pytest.raises(ConfigError, match=match):
        workers(jobs, threads, cores=8)


def test_cli_refuses_bad_jobs_in_one_line(tmp_path, capsys, monkeypatch):
    from s6lab.cli import main

    monkeypatch.setattr("s6lab.threads.available_cores", lambda: 2)
    base = ["compare", "--model", "s6", "--epochs", "1", "--seed", "0", "--results-dir", str(tmp_path)]
    assert main(base + ["--jobs", "0"]) == 2
    assert main(base + ["--jobs", "3", "--threads-per-job", "1"]) == 2
    assert main(base + ["--jobs", "2", "--address", "127.0.0.1:6379"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["s6lab compare: error: --jobs must be a positive number of trainings at once, or auto; got 0",
                   "s6lab compare: error: --jobs 3 x --threads-per-job 1 needs 3 cores, but this machine has 2 "
                   "physical cores; use --jobs 2 (or --jobs auto)",
                   "s6lab compare: error: --address names a Ray cluster; add --backend ray"]
    assert not (tmp_path / "runs").exists()  # refused before anything trained


def test_ray_missing_says_how_to_install(tmp_path, capsys, monkeypatch):
    from s6lab.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 's6lab\[ray\]'"):
        compare(["s6"], seeds=[0], epochs=1, out=tmp_path, backend="ray")
    assert main(["compare", "--model", "s6", "--epochs", "1", "--seed", "0", "--results-dir", str(tmp_path),
                 "--backend", "ray"]) == 2
    assert capsys.readouterr().err == ("s6lab compare: error: --backend ray needs Ray: pip install 's6lab[ray]' "
                                       "(or pip install ray)\n")


def test_unreachable_ray_address_fails_in_seconds_naming_it(tmp_path):
    need_ray()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"cannot reach a Ray cluster at 127.0.0.1:{port}"):
        compare(["s6"], seeds=[0], epochs=1, out=tmp_path, backend="ray", address=f"127.0.0.1:{port}")
    assert time.perf_counter() - start < 10
    with pytest.raises(ConfigError, match="give HOST:PORT"):
        compare(["s6"], seeds=[0], epochs=1, out=tmp_path, backend="ray", address="headnode")
    assert not (tmp_path / "runs").exists()


def test_jobs_as_typed_on_a_command_line_are_read_by_compare(tmp_path, monkeypatch):
    """"1" trains in this process like 1; " 2" is two worker processes; the CLI and the examples pass the text."""
    import s6lab.comparison

    def no_pool(*args, **kwargs):
        raise AssertionError("jobs='1' must train in this process")

    monkeypatch.setattr(s6lab.comparison, "run_jobs", no_pool)
    c = compare(["s6"], seeds=[0], epochs=1, out=tmp_path, progress=False, jobs="1", **SUBSET)
    assert c.rows[0].seeds == 1
    with pytest.raises(ConfigError, match="--jobs must be a positive number"):
        compare(["s6"], seeds=[0], epochs=1, out=tmp_path, progress=False, jobs=" two", **SUBSET)


DRIVER = """
import sys
from s6lab.comparison import compare
compare(["s6"], seeds=[0, 1], epochs=40, out=sys.argv[1], progress=False, jobs=2, threads_per_job=1,
        train_size=500, test_size=200)
"""


def _workers_holding(parent: int, lock: str) -> list[int]:
    """The children of ``parent`` that hold ``lock`` open (found through /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            if any(os.readlink(fd) == lock for fd in (stat.parent / "fd").iterdir()):
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):  # gone while we looked
            continue
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.mnist
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the workers through /proc (Linux)")
def test_a_killed_driver_takes_its_workers_with_it(tmp_path):
    """kill -9 of `compare --jobs` itself: its workers end within seconds, not after training their jobs
    to the end (40 epochs each), and the runs' locks are free for the next call."""
    import subprocess

    from filelock import FileLock

    lock = str(run_dir(tmp_path, "s6", 0, 40, 500) / LOCK)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)],
                              env={**os.environ, "S6LAB_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (workers := _workers_holding(driver.pid, lock)):
            assert driver.poll() is None and time.monotonic() < deadline, "no worker started training"
            time.sleep(0.05)
        driver.kill()
        driver.wait()
        killed_at = time.monotonic()
        while any(_alive(pid) for pid in workers) and time.monotonic() - killed_at < 10:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in workers), "a worker outlived its driver"
        assert time.monotonic() - killed_at < 10
        with FileLock(lock, timeout=0):  # free: the same command can run again at once
            pass
    finally:
        driver.kill()
