from __future__ import annotations

from s6lab import get_model
from s6lab.check import all_passed, assignment_check, format_check
from s6lab.train import EpochRecord, History


def history(accs):
    return History([EpochRecord(i, 0.1, 99.0, 0.02, a, 0.01, 1.0) for i, a in enumerate(accs, 1)])


def by_name(rows):
    return {r.name: r.passed for r in rows}


def test_passing_run():
    rows = assignment_check(get_model("s6"), history([98.0] * 12 + [99.41, 99.45, 99.5]))
    assert all_passed(rows)
    assert "Overall: PASS" in format_check(rows)


def test_one_lucky_epoch_is_not_enough():
    rows = by_name(assignment_check(get_model("s6"), history([99.0] * 12 + [99.5, 99.3, 99.41])))
    assert rows["best test accuracy"]
    assert not rows["test accuracy, last 3 epochs"]


def test_too_many_epochs_and_missing_parts():
    model = get_model("s6", batchnorm=False, dropout=0.0)
    rows = by_name(assignment_check(model, history([99.5] * 20)))
    assert not rows["epochs"] and not rows["BatchNorm"] and not rows["Dropout"]


def test_empty_history_fails_cleanly():
    rows = assignment_check(get_model("s6"), History())
    assert not all_passed(rows)
    assert "| best test accuracy | >= 99.4% | nan% | FAIL |" in format_check(rows, markdown=True)
