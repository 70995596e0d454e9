"""Fewer training threads while another program keeps a core busy (s6lab.load_follower)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from s6lab.errors import ConfigError
from s6lab.load_follower import CpuTimes, LoadFollower, busy_ticks, own_ticks, read_cpu_times, threads_for
from s6lab.threads import available_cores, configure_threads

PROC_STAT = """cpu  900 90 90 9000 9 0 9 90 0 0
cpu0 100 10 20 5000 7 1 2 50 0 0
cpu1 300 30 40 4000 2 3 4 40 0 0
cpu2 1 1 1 1 1 1 1 1 0 0
intr 12345
"""


def test_busy_ticks_count_user_nice_system_irq_softirq_of_the_cpus_given():
    assert busy_ticks(PROC_STAT, [0]) == 100 + 10 + 20 + 1 + 2  # not idle 5000, iowait 7, steal 50
    assert busy_ticks(PROC_STAT, [0, 1]) == 133 + 377
    with pytest.raises(ValueError, match="no line for CPUs"):
        busy_ticks(PROC_STAT, [7])


def test_own_ticks_read_past_a_command_name_with_spaces_and_parentheses():
    line = "4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 40 0 0 20 0 3 0"
    assert own_ticks(line) == 250 + 40


def test_others_since_subtracts_this_process_and_divides_by_the_seconds():
    before, after = CpuTimes(busy=1000, own=400), CpuTimes(busy=1300, own=550)
    assert after.others_since(before, 1.5, ticks_per_second=100) == pytest.approx(1.0)
    assert after.others_since(before, 0, ticks_per_second=100) == 0.0
    assert CpuTimes(1000, 500).others_since(CpuTimes(1000, 400), 1.0, 100) == 0.0  # never negative


@pytest.mark.parametrize("others, cores, logical, chosen, threads", [
    (0.0, 2, 2, 2, 2),
    (0.55, 2, 2, 2, 2),  # a tab that wakes now and then does not take a core
    (0.65, 2, 2, 2, 1),
    (0.9, 2, 2, 2, 1),  # a spinning program, as measured beside 2 training threads
    (2.0, 2, 2, 2, 1),  # never fewer than one
    (1.0, 8, 8, 8, 7),
    (1.0, 4, 8, 4, 4),  # one busy hyperthread is half a core
    (2.0, 4, 8, 4, 3),
    (0.0, 8, 8, 4, 4),  # never more than chosen at start-up
])
def test_threads_for_leaves_the_cores_the_other_programs_take(others, cores, logical, chosen, threads):
    assert threads_for(others, cores, logical, chosen) == threads


class _Load:
    """A clock and /proc readings the test moves by hand: ``others`` CPUs busy elsewhere per second."""

    def __init__(self) -> None:
        self.now, self.busy, self.own, self.reads, self.others = 0.0, 0, 0, 0, 0.0
        self.set_to: list[int] = []

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.own += int(100 * seconds)
        self.busy += int(100 * seconds * (1 + self.others))

    def read(self, cpus) -> CpuTimes:
        self.reads += 1
        return CpuTimes(self.busy, self.own)

    def follower(self) -> LoadFollower:
        return LoadFollower(2, 2, [0, 1], clock=lambda: self.now, read=self.read, set_threads=self.set_to.append,
                            ticks_per_second=100)


def _ticks(load: _Load, follower: LoadFollower, seconds: float, others: float) -> list[str]:
    """Steps of 0.25 s for ``seconds`` with ``others`` CPUs busy elsewhere; the sentences said."""
    load.others, said = others, []
    for _ in range(int(seconds / 0.25)):
        load.advance(0.25)
        if (change := follower.tick()) is not None:
            said.append(change)
    return said


def test_a_busy_core_lowers_the_threads_after_two_looks_and_quiet_restores_them():
    load = _Load()
    follower = load.follower()
    assert _ticks(load, follower, 5, others=0.0) == [] and load.set_to == []  # quiet: never moves
    assert load.reads == 5  # once a second, not once a step
    said = _ticks(load, follower, 2.25, others=0.9)
    assert load.set_to == [1] and follower.threads == 1 and len(said) == 1
    assert said[0].startswith("other programs are using 0.9 of the 2 CPUs this training may use: training on "
                              "1 thread while they do (S6LAB_FOLLOW_LOAD=0 keeps 2)")
    assert _ticks(load, follower, 3, others=1.0) == []  # still busy: stays
    said = _ticks(load, follower, 2.25, others=0.0)
    assert load.set_to == [1, 2] and said == ["the other programs are quieter now: training on 2 threads again"]


def test_a_burst_of_one_second_does_not_move_the_threads():
    load = _Load()
    follower = load.follower()
    _ticks(load, follower, 1, others=0.0)
    for _ in range(4):  # busy one second, quiet the next
        _ticks(load, follower, 1, others=1.0)
        _ticks(load, follower, 1, others=0.0)
    assert load.set_to == [] and follower.threads == 2


def test_restart_does_not_count_the_time_between_trainings():
    load = _Load()
    follower = load.follower()
    _ticks(load, follower, 1.5, others=0.0)
    load.others = 1.0
    load.advance(60)  # a notebook idle for a minute while another program ran
    assert follower.restart(current=2) is None
    load.others = 0.0
    load.advance(0.25)
    assert follower.tick() is None and follower.others == 0.0  # a fresh start, not an average over the minute
    assert _ticks(load, follower, 3, others=0.0) == [] and load.set_to == []


def test_a_thread_count_set_with_torch_wins_and_the_follower_stops():
    load = _Load()
    follower = load.follower()
    said = follower.restart(current=1)  # torch.set_num_threads(1) in the notebook since the last training
    assert said == "torch.set_num_threads(1) was called: s6lab keeps 1 thread and no longer follows the load"
    assert _ticks(load, follower, 5, others=1.0) == [] and load.reads == 0 and load.set_to == []
    assert follower.restart(current=2) is None and follower.stopped == said  # for good


def test_a_proc_that_cannot_be_read_stops_the_follower_instead_of_the_training():
    def unreadable(cpus):
        raise ValueError("/proc/stat has no line for CPUs ['cpu0', 'cpu1']")

    follower = LoadFollower(2, 2, [0, 1], read=unreadable, set_threads=lambda n: None, ticks_per_second=100)
    assert follower.tick() == ("the load cannot be read here (/proc/stat has no line for CPUs ['cpu0', 'cpu1']): "
                               "training on 2 threads from now on")
    assert follower.tick() is None


def skip_unless_quiet(cpus, seconds: float = 0.5) -> None:
    """Skip a test that measures a spinner against a quiet machine when other programs (a training
    beside the tests, say) already keep half a CPU or more busy: it would measure them instead."""
    before, started = read_cpu_times(cpus), time.monotonic()
    time.sleep(seconds)
    others = read_cpu_times(cpus).others_since(before, time.monotonic() - started, os.sysconf("SC_CLK_TCK"))
    if others >= 0.5:
        pytest.skip(f"other programs keep {others:.1f} of {len(cpus)} CPUs busy: this test needs a quiet machine "
                    "(run it when no training or benchmark runs beside the tests)")


def test_read_cpu_times_sees_a_real_busy_program_beside_this_one():
    """The real /proc on this machine: a spinning process shows as other programs' CPU time, this
    process's own work as its own."""
    cpus = os.sched_getaffinity(0)
    skip_unless_quiet(cpus)  # a training beside the tests would be counted as the spinner
    before, started = read_cpu_times(cpus), time.monotonic()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            pass  # this process works too
    finally:
        spinner.kill()
        spinner.wait()
    after = read_cpu_times(cpus)
    seconds, ticks = time.monotonic() - started, os.sysconf("SC_CLK_TCK")
    # one busy thread of this process: about one CPU's time, never more than one thread can run
    assert 0.5 * seconds * ticks <= after.own - before.own <= 1.2 * seconds * ticks + 2
    assert after.others_since(before, seconds, ticks) >= 0.5


def test_fit_trains_on_fewer_threads_while_another_program_spins(monkeypatch, capsys):
    """A real spinner beside a real training: the epoch records the fewer threads and says so; the
    thread count s6lab chose comes back when the training after it sees a quiet machine."""
    import s6lab.train as train
    from s6lab import get_recipe
    from s6lab.data import MNISTTensors, TensorSplit

    cores, cpus = available_cores(), os.sched_getaffinity(0)
    if cores < 2:
        pytest.skip("one core: nothing to give up")
    skip_unless_quiet(cpus)
    chosen = torch.get_num_threads()
    torch.set_num_threads(cores)  # as s6lab chooses by default, whatever S6LAB_THREADS this test runs under
    follower = LoadFollower(cores, cores, cpus, interval=0.25)
    monkeypatch.setattr(train, "load_follower", lambda: follower)  # as the import does by default
    g = torch.Generator().manual_seed(0)
    split = TensorSplit(torch.randn(2048, 1, 28, 28, generator=g), torch.randint(0, 10, (2048,), generator=g))
    data = MNISTTensors(split, split.subset(64))
    recipe = get_recipe("s6", epochs=1, precision="fp32", device="cpu", batch_size=64)
    # two spinners per hyperthread of a core: one alone, three busy threads sharing 2 CPUs, gets about 2/3 of a
    # CPU, close to the 0.6 at which the follower counts a core taken (TAKEN_AT); with one, this test failed
    # once in 15 quiet runs (session 19). Two together read about one CPU.
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * len(cpus) // cores)]
    try:
        try:
            history = train.fit(recipe.build(), data, recipe.train, progress=True)
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
        fewest = history.epochs[0].fewest_threads  # cores - 1 alone; fewer where other tests run beside this one
        assert fewest is not None and 1 <= fewest < cores
        assert f"training on {fewest} thread" in capsys.readouterr().err
        history = train.fit(recipe.build(), data, recipe.train, progress=False)
        assert follower.threads == cores and torch.get_num_threads() == cores
    finally:
        torch.set_num_threads(chosen)


def test_s6lab_follows_the_load_by_default_unless_told_not_to_and_never_above_the_count_chosen():
    default = configure_threads({})  # on by default: 1.22x on AVX-512, no loss on AVX2 (the module)
    assert default.follows_load == (available_cores() > 1)
    assert "fewer while other programs keep one busy" in default.describe() or available_cores() == 1
    assert configure_threads({"S6LAB_FOLLOW_LOAD": "1"}) == default
    fixed = configure_threads({"S6LAB_FOLLOW_LOAD": "0"})
    assert not fixed.follows_load and "fewer while" not in fixed.describe()
    yours = configure_threads({"S6LAB_THREADS": str(available_cores())})  # at most your count (more are refused)
    assert yours.follows_load == default.follows_load and yours.threads_by == "you"
    assert not configure_threads({"S6LAB_THREADS": "1"}).follows_load  # nothing to drop


@pytest.mark.parametrize("bad", ["maybe", "2", ""])
def test_a_bad_follow_load_setting_is_named(bad):
    with pytest.raises(ValueError, match=f"S6LAB_FOLLOW_LOAD='{bad}': give 1 .* or 0"):
        configure_threads({"S6LAB_FOLLOW_LOAD": bad})


@pytest.mark.parametrize("value, follows", [("yes", True), ("True", True), ("off", False), ("no", False)])
def test_follow_load_understands_the_switch_spellings_of_s6lab_quick(value, follows):
    assert configure_threads({"S6LAB_FOLLOW_LOAD": value, "S6LAB_THREADS": "2"}).follows_load is follows


def test_a_bad_setting_does_not_break_the_import_and_the_command_refuses_it_in_one_line():
    """One process (torch loads in seconds): the import goes through, then the command refuses. Every thread
    setting shares this path (`configure_threads_at_import`; their messages are tested in test_threads.py), and a
    bad OMP_WAIT_POLICY is gone before torch starts OpenMP, which would add its own line
    (``libgomp: Invalid value for environment variable OMP_WAIT_POLICY``) and a blank one."""
    code = "import sys, s6lab\nprint('imported', flush=True)\nfrom s6lab.cli import main\nsys.exit(main(['models']))"
    done = subprocess.run([sys.executable, "-c", code],
                          env={**os.environ, "S6LAB_THREADS": "two", "OMP_WAIT_POLICY": "bogus"},
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "imported" and done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == ("s6lab models: error: S6LAB_THREADS='two': give a positive number of threads, or auto; "
                           "OMP_WAIT_POLICY='bogus': give PASSIVE (waiting threads sleep: s6lab's choice) or ACTIVE "
                           "(they spin), or unset it for PASSIVE (in the environment)\n")


def test_fit_refuses_a_bad_setting_from_the_environment(monkeypatch):
    import s6lab.train as train
    from s6lab import get_recipe
    from s6lab.data import MNISTTensors, TensorSplit

    monkeypatch.setattr(train, "environment_error", lambda: "S6LAB_THREADS='two': give a positive number")
    split = TensorSplit(torch.zeros(8, 1, 28, 28), torch.zeros(8, dtype=torch.long))
    recipe = get_recipe("s6", epochs=1, device="cpu")
    with pytest.raises(ConfigError, match="S6LAB_THREADS='two'"):
        train.fit(recipe.build(), MNISTTensors(split, split), recipe.train, progress=False)


def test_import_gives_fit_a_follower_by_default():
    """``import s6lab`` with nothing set: the process has a follower with the cores available (the tests
    themselves run with S6LAB_FOLLOW_LOAD=0, conftest.py, which gives none: the next test)."""
    code = ("import s6lab\nfrom s6lab.load_follower import load_follower\nf = load_follower()\n"
            "print(None if f is None else (f.chosen, f.cores))")
    env = {k: v for k, v in os.environ.items() if k not in ("S6LAB_THREADS", "OMP_NUM_THREADS", "S6LAB_FOLLOW_LOAD")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    cores = available_cores()
    assert done.stdout.strip() == ("None" if cores == 1 else str((cores, cores))), done.stderr[-2000:]


def test_follow_load_0_gives_no_follower(monkeypatch):
    """What the import chose decides: with S6LAB_FOLLOW_LOAD=0, `load_follower` gives none; by default, one."""
    import s6lab.load_follower as module
    import s6lab.threads as threads

    monkeypatch.setattr(module, "_FOLLOWER", None)
    monkeypatch.setattr(threads, "thread_choice", lambda: configure_threads({"S6LAB_FOLLOW_LOAD": "0"}))
    assert module.load_follower() is None
    monkeypatch.setattr(threads, "thread_choice", lambda: configure_threads({}))
    assert (module.load_follower() is None) == (available_cores() == 1)


def test_a_follower_that_stopped_at_fewer_threads_is_still_recorded_in_later_epochs(monkeypatch):
    """/proc became unreadable after the follower lowered the count: training goes on at that count,
    and every later epoch still records it (the count did not go back)."""
    import s6lab.train as train
    from s6lab import get_recipe
    from s6lab.data import MNISTTensors, TensorSplit

    chosen = torch.get_num_threads()
    if chosen < 2:
        pytest.skip("one thread: nothing to lower")
    # every CPU busy elsewhere, twice: one thread left
    readings = iter([CpuTimes(0, 0), CpuTimes(100 * chosen, 0), CpuTimes(200 * chosen, 0)])

    def read(cpus):
        reading = next(readings, None)
        if reading is None:
            raise OSError("/proc/stat vanished")
        return reading

    clock = iter(range(10_000))
    # one logical CPU per core, as the readings assume (the host's own layout does not matter here)
    follower = LoadFollower(chosen, chosen, range(chosen), read=read, clock=lambda: next(clock),
                            ticks_per_second=100)
    monkeypatch.setattr(train, "load_follower", lambda: follower)
    split = TensorSplit(torch.randn(256, 1, 28, 28, generator=torch.Generator().manual_seed(0)),
                        torch.randint(0, 10, (256,)))
    recipe = get_recipe("s6", epochs=2, precision="fp32", device="cpu", batch_size=32)
    try:
        history = train.fit(recipe.build(), MNISTTensors(split, split.subset(32)), recipe.train, progress=False)
        assert follower.stopped and follower.threads == 1 and torch.get_num_threads() == 1
        assert [e.fewest_threads for e in history.epochs] == [1, 1]
    finally:
        torch.set_num_threads(chosen)
