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


def _history(accs):
    from s6lab.train import EpochRecord, History

    return History([EpochRecord(e, 0.1, 99.0, 0.02, a, 0.01, 1.0) for e, a in enumerate(accs, start=1)])


def test_shortfall_counts_test_images_per_failed_epoch():
    from s6lab.check import shortfalls

    h = _history([99.0] * 15 + [99.37, 99.42, 99.41])
    assert [(s.epoch, s.images_short) for s in shortfalls(h)] == [(16, 3)]
    assert [(s.epoch, s.images_short) for s in shortfalls(_history([99.395, 99.2, 99.5]), test_images=2000)] == [
        (1, 1), (2, 4)]
    assert shortfalls(_history([99.5, 99.4, 99.45])) == []


def test_next_steps_follow_the_recipe_and_stay_within_the_rules():
    from s6lab.check import next_steps
    from s6lab.train import TrainConfig

    steps = next_steps(TrainConfig(epochs=15, weight_decay=0.0), 19_602)
    assert len(steps) == 3 and "--epochs 19" in steps[0] and "--weight-decay 5e-4" in steps[1]
    steps = next_steps(TrainConfig(epochs=19, weight_decay=5e-4, augment=False), 8_000)
    assert "--augment" in steps[0] and "11,999 parameters are still free" in steps[1] and "--seed" in steps[2]


def test_a_failed_check_teaches_and_json_grades(tmp_path, capsys):
    import json
    import shutil
    from pathlib import Path

    from s6lab.cli import main

    run = tmp_path / "r"
    shutil.copytree(Path(__file__).resolve().parents[1] / "results" / "runs" / "s6" / "e15-s0", run)
    h = json.loads((run / "history.json").read_text())
    h[-3]["test_acc"] = 99.37
    (run / "history.json").write_text(json.dumps(h))
    assert main(["check", str(run)]) == 1
    out = capsys.readouterr().out
    assert "Overall: FAIL" in out and "epoch 13 at 99.37% (3 test images short of 99.4%)" in out
    assert "in bf16" in out and "What the rules allow you to try next:" in out and "--epochs 19" in out
    assert main(["check", str(run), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False and report["precision"] == "bf16" and len(report["requirements"]) == 6


def test_version(capsys):
    import pytest

    import s6lab
    from s6lab.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"s6lab {s6lab.__version__}"
