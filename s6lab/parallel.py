"""Several trainings at once: worker processes on this machine, or a Ray cluster.

A job is one (recipe, run directory). A worker trains it with
``train_run(recipe, path, resume=True)``: it loads its own data (the recipe names the subset), holds the
run directory's lock, and writes the same files a serial run writes. Every job is seeded by its recipe,
so a run's numbers do not depend on which worker trained it or on what ran beside it (with the same
number of threads per training: a different thread count may change the last bits of a float sum).

Threads: OpenMP reads its thread count when torch loads, so a worker's count is set in its
environment before it imports s6lab (``S6LAB_THREADS`` and ``OMP_NUM_THREADS``, see
[`threads`][s6lab.threads]). On one machine, jobs x threads per job may not exceed the physical cores:
more would only make every training wait for a core.

A job that raises (``TrainingDiverged``, a damaged run directory, ...) is reported as failed with its
message; the other jobs run on. So is a job whose worker process dies under it (killed by the OS when
memory runs out, or by hand): a fresh worker takes the next job, and the same call again resumes the
killed run from its last checkpoint.

Examples:
    >>> workers(2, 1, cores=4)
    Workers(jobs=2, threads=1)
    >>> workers("auto", None, cores=4)
    Workers(jobs=4, threads=1)
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .recipe import Recipe

#: where compare's jobs can run
BACKENDS = ("process", "ray")

#: the one line that says how to get Ray
RAY_MISSING = "--backend ray needs Ray: pip install 's6lab[ray]' (or pip install ray)"

#: seconds to wait for a Ray head before calling its address unreachable
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Job:
    """One training: what decides it and where it is written."""

    recipe: Recipe
    path: Path

    @property
    def label(self) -> str:
        """``s6-gap seed 1``."""
        return f"{self.recipe.name} seed {self.recipe.train.seed}"


@dataclass(frozen=True)
class JobResult:
    """What became of one job: its accuracies, or the error that stopped it."""

    job: Job
    seconds: float  # wall clock of the job, in its worker
    final_acc: float | None = None  # %, None: failed
    best_acc: float | None = None
    error: str | None = None  # "TrainingDiverged: the loss became NaN ..."; None: finished

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Workers:
    """How many trainings run at once, and how many threads each uses."""

    jobs: int | None  # None: no cap (Ray runs as many as its cluster has CPUs for)
    threads: int


def workers(jobs: int | str, threads_per_job: int | None, *, backend: str = "process",
            cores: int | None = None) -> Workers:
    """The number of concurrent jobs and threads per job, checked against the physical cores.

    Args:
        jobs: a positive number, or ``"auto"``: as many as the cores allow at ``threads_per_job`` each
            (with Ray: as many as the cluster has CPUs for).
        threads_per_job: threads of each training; default 1 for ``"auto"`` and for Ray, else this
            machine's cores shared out (``cores // jobs``, at least 1).
        backend: ``"process"`` checks ``jobs x threads`` against this machine's cores; ``"ray"`` does not
            (the cluster's size is Ray's to know: it runs a job when ``threads`` CPUs are free).
        cores: physical cores (default [`available_cores`][s6lab.threads.available_cores]).

    Raises:
        ConfigError: ``jobs`` or ``threads_per_job`` is not positive, or they ask for more cores than there are.
    """
    from .threads import available_cores

    cores = available_cores() if cores is None else cores
    if threads_per_job is not None and (isinstance(threads_per_job, bool) or threads_per_job < 1):
        raise ConfigError(f"--threads-per-job must be 1 or more, got {threads_per_job}")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    cluster = backend == "ray"
    if isinstance(jobs, str):  # as typed on a command line: "2", " auto"
        jobs = jobs.strip()
        jobs = int(jobs) if jobs.lstrip("-").isdigit() else jobs
    if jobs == "auto":
        threads = threads_per_job or 1
        return Workers(None if cluster else max(1, cores // threads), threads)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be a positive number of trainings at once, or auto; got {jobs!r}")
    threads = threads_per_job or (1 if cluster else max(1, cores // jobs))
    if not cluster and jobs * threads > cores:
        raise ConfigError(f"--jobs {jobs} x --threads-per-job {threads} needs {jobs * threads} cores, but this "
                          f"machine has {cores} physical core{'s' if cores != 1 else ''}; use --jobs "
                          f"{max(1, cores // threads)} (or --jobs auto)")
    return Workers(jobs, threads)


def train_job(job: Job, data: Any = None) -> JobResult:
    """Train one job here (what every worker runs); an exception becomes a failed result.

    Failures a user can fix keep their message; any other exception keeps its type name too.
    """
    from .runs import train_run

    start = time.perf_counter()
    try:
        run = train_run(job.recipe, job.path, resume=True, data=data, progress=False)
    except Exception as e:  # isolated: one failed job must not stop the others
        return JobResult(job, time.perf_counter() - start, error=f"{type(e).__name__}: {e}")
    return JobResult(job, time.perf_counter() - start, run.history.final_acc, run.history.best_acc)


def _thread_env(threads: int) -> dict[str, str]:
    # read by s6lab.threads when the worker imports s6lab, before torch starts OpenMP
    return {"S6LAB_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` while the block runs (spawned workers copy it), then as it was."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_jobs(
    jobs: Sequence[Job],
    *,
    workers: Workers,
    backend: str = "process",
    address: str | None = None,
    data: Any = None,
    on_done: Callable[[JobResult], None] | None = None,
) -> list[JobResult]:
    """Train every job, ``workers.jobs`` at a time, and return their results in the order given.

    Args:
        jobs: the trainings.
        workers: jobs at once and threads per job (`workers`).
        backend: ``"process"`` (spawned worker processes on this machine) or ``"ray"``.
        address: Ray only: a running cluster (``HOST:PORT`` of ``ray start --head``, ``ray://HOST:PORT`` or
            ``auto``); default: the Ray already initialised in this process, else a local one.
        data: preloaded tensors sent to every worker (small subsets only); default: each worker loads its own.
        on_done: called with each result as it finishes (progress lines).

    Raises:
        ConfigError: unknown backend, Ray missing, or an unreachable ``address``.
    """
    check_backend(backend, address)
    if not jobs:
        return []
    run = _run_ray if backend == "ray" else _run_processes
    results = run(list(jobs), workers, address, data, on_done or (lambda _: None))
    order = {id(job): i for i, job in enumerate(jobs)}
    return sorted(results, key=lambda r: order[id(r.job)])


def check_backend(backend: str, address: str | None = None) -> None:
    """Refuse, in seconds and before any training, a backend that cannot run here.

    Raises:
        ConfigError: an unknown backend, ``address`` without Ray, Ray not installed (with the line that
            installs it), or a Ray head that does not answer at ``address`` (named).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise ConfigError("--address names a Ray cluster; add --backend ray")
    if backend == "ray":
        _import_ray()
        if address is not None:
            _check_reachable(address)


def _worker_loop(conn: Any, data: Any) -> None:
    """A worker process: train each job it is sent, send back its result, stop at ``None``."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers
    threading.Thread(target=_exit_with_the_driver, daemon=True).start()
    try:
        while (job := conn.recv()) is not None:
            conn.send(train_job(job, data))
    except (EOFError, OSError):  # the driver is gone (killed): nobody is left to answer
        pass


def _exit_with_the_driver() -> None:
    """End this worker as soon as the process that started it ends, also when it was killed with -9.

    Otherwise a worker of a dead driver would train its job to the end while holding that run's lock,
    and the same command run again at once would find the run locked. Checkpoints are written
    atomically, so the next call resumes from the last finished epoch.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])  # ready when the parent has ended
        os._exit(1)


@dataclass
class _Worker:
    """A worker process, the pipe to it, and the job it is training (None: idle)."""

    process: Any
    conn: Any
    job: Job | None = None
    started: float = 0.0


def _died(worker: _Worker) -> JobResult:
    """The result of a job whose worker process died under it (killed by the OS or by hand)."""
    import signal

    worker.process.join(timeout=5)
    code = worker.process.exitcode
    killed = code is not None and code < 0 and -code in signal.valid_signals()
    how = f"killed by {signal.Signals(-code).name}" if killed else f"ended with exit code {code}"
    return JobResult(worker.job, time.perf_counter() - worker.started,
                     error=f"WorkerDied: the worker process training it was {how} (out of memory, or stopped by "
                           "hand); run the same command again to resume it from its last checkpoint")


def _run_processes(jobs: list[Job], w: Workers, address: str | None, data: Any,
                   on_done: Callable[[JobResult], None]) -> list[JobResult]:
    """Each worker process trains one job at a time; a worker that dies fails only its own job, and a
    fresh worker takes the next one (a process pool would fail every pending job with it)."""
    # "spawn": a fresh interpreter imports s6lab (and torch) with the thread count in its environment;
    # a forked worker would inherit this process's OpenMP, already started with its own count
    context = multiprocessing.get_context("spawn")
    queue, idle, busy, results = list(jobs), [], [], []
    everyone: list[_Worker] = []
    with _environment(_thread_env(w.threads)):
        try:
            while queue or busy:
                while queue and len(busy) < min(w.jobs or len(jobs), len(jobs)):
                    worker = idle.pop() if idle else _start_worker(context, data, everyone)
                    worker.job, worker.started = queue.pop(0), time.perf_counter()
                    worker.conn.send(worker.job)
                    busy.append(worker)
                waiting = [x for worker in busy for x in (worker.conn, worker.process.sentinel)]
                ready = set(multiprocessing.connection.wait(waiting))
                for worker in [x for x in busy if x.conn in ready or x.process.sentinel in ready]:
                    busy.remove(worker)
                    try:  # the worker returns a copy of the job: keep the caller's, which run_jobs orders by
                        result = replace(worker.conn.recv(), job=worker.job)
                        if worker.process.is_alive():  # it answered; one that died right after is not reused
                            idle.append(worker)
                    except (EOFError, OSError):  # its process died before it could answer
                        result = _died(worker)
                    results.append(result)
                    on_done(result)
        finally:  # done, or Ctrl-C / an error here: no worker outlives the call
            for worker in idle:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
            for worker in everyone:
                worker.process.join(timeout=10 if worker in idle else 0)
                if worker.process.is_alive():
                    worker.process.terminate()
                    worker.process.join()
    return results


def _start_worker(context: Any, data: Any, everyone: list[_Worker]) -> _Worker:
    ours, theirs = context.Pipe()
    process = context.Process(target=_worker_loop, args=(theirs, data), daemon=True)
    process.start()
    theirs.close()  # the worker holds its end: when it dies, reading ours ends (EOFError) instead of waiting
    everyone.append(_Worker(process, ours))
    return everyone[-1]


def _check_reachable(address: str) -> None:
    """Fail in seconds, naming the address, where ``ray.init`` would retry for a minute."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: give HOST:PORT (the head's `ray start --head` address), "
                          "ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise ConfigError(f"cannot reach a Ray cluster at {address} ({e.strerror or e}); start one with "
                          f"`ray start --head` there, or check the address and port") from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def _run_ray(jobs: list[Job], w: Workers, address: str | None, data: Any,
             on_done: Callable[[JobResult], None]) -> list[JobResult]:
    ray = _import_ray()
    started_here = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError) as e:  # something answers at the port, but not a Ray head (~20 s)
            raise ConfigError(f"cannot connect to a Ray cluster at {address} ({type(e).__name__}); is it the "
                              "address `ray start --head` printed, and the same Ray version?") from None
        started_here = address is None  # a local Ray we started: shut it down again
    try:
        task = ray.remote(num_cpus=w.threads)(train_job).options(runtime_env={"env_vars": _thread_env(w.threads)})
        shared = ray.put(data) if data is not None else None
        waiting: dict[Any, Job] = {}
        queue = list(jobs)
        results = []
        while queue or waiting:
            # at most w.jobs in flight; Ray starts each when w.threads CPUs are free
            while queue and (w.jobs is None or len(waiting) < w.jobs):
                job = queue.pop(0)
                waiting[task.remote(job, shared)] = job
            done, _ = ray.wait(list(waiting), num_returns=1)
            job = waiting.pop(done[0])
            try:  # ray returns a copy of the job: keep the caller's, which run_jobs orders by
                result = replace(ray.get(done[0]), job=job)
            except Exception as e:  # the worker died (ray.exceptions.WorkerCrashedError, ...)
                result = JobResult(job, 0.0, error=f"{type(e).__name__}: {e}")
            results.append(result)
            on_done(result)
        return results
    finally:
        if started_here:
            ray.shutdown()


def format_result(result: JobResult) -> str:
    """One progress line: ``s6-gap seed 1: final 98.70%, best 98.85%, 41.2 s``, or the failure."""
    if not result.ok:
        return f"{result.job.label}: failed after {result.seconds:.1f} s: {result.error}"
    return (f"{result.job.label}: final {result.final_acc:.2f}%, best {result.best_acc:.2f}%, "
            f"{result.seconds:.1f} s")
