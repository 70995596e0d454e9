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


def test_rows_hold_numbers_and_only_the_table_turns_them_into_text():
    from s6lab.check import MAX_EPOCHS, MAX_PARAMS, TARGET_ACC, format_measured, format_rule

    rows = assignment_check(get_model("s6"), history([98.0] * 12 + [99.41, 99.45, 99.5]))
    assert [(r.name, r.rule, r.threshold, r.measured, r.unit) for r in rows] == [
        ("parameters", "<", MAX_PARAMS, 19_602, ""),
        ("epochs", "<", MAX_EPOCHS, 15, ""),
        ("BatchNorm", "used", True, True, ""),
        ("Dropout", "used", True, True, ""),
        ("best test accuracy", ">=", TARGET_ACC, 99.5, "%"),
        ("test accuracy, last 3 epochs", ">= each", TARGET_ACC, (99.41, 99.45, 99.5), "%")]
    assert (MAX_PARAMS, MAX_EPOCHS, TARGET_ACC) == (20_000, 20, 99.4)
    assert type(rows[0].measured) is int and type(rows[1].measured) is int and type(rows[4].measured) is float
    assert [(format_rule(r), format_measured(r)) for r in rows] == [
        ("< 20,000", "19,602"), ("< 20", "15"), ("used", "yes"), ("used", "yes"), (">= 99.4%", "99.50%"),
        (">= 99.4% each", "99.41%, 99.45%, 99.50%")]
    empty = assignment_check(get_model("s6", batchnorm=False), History())
    assert empty[2].measured is False and empty[5].measured == () and format_measured(empty[5]) == "none"
    assert format_measured(empty[2]) == "no" and format_measured(empty[4]) == "nan%"


def test_the_table_is_unchanged_by_numbers_inside():
    rows = assignment_check(get_model("s6"), history([99.0] * 12 + [99.5, 99.3, 99.41]), target=99.45)
    assert format_check(rows) == (
        "requirement                   rule            this run                result\n"
        "parameters                    < 20,000        19,602                  PASS\n"
        "epochs                        < 20            15                      PASS\n"
        "BatchNorm                     used            yes                     PASS\n"
        "Dropout                       used            yes                     PASS\n"
        "best test accuracy            >= 99.45%       99.50%                  PASS\n"
        "test accuracy, last 3 epochs  >= 99.45% each  99.50%, 99.30%, 99.41%  FAIL\n"
        "\nOverall: FAIL\n")


def test_json_rows_carry_text_and_numbers():
    import json

    from s6lab.check import requirements_json

    rows = requirements_json(assignment_check(get_model("s6"), history([99.0] * 12 + [99.5, 99.3, 99.41])))
    assert rows[0] == {"name": "parameters", "target": "< 20,000", "value": "19,602", "passed": True, "rule": "<",
                       "threshold": 20_000, "measured": 19_602, "unit": ""}
    assert rows[5] == {"name": "test accuracy, last 3 epochs", "target": ">= 99.4% each",
                       "value": "99.50%, 99.30%, 99.41%", "passed": False, "rule": ">= each", "threshold": 99.4,
                       "measured": [99.5, 99.3, 99.41], "unit": "%"}
    empty = requirements_json(assignment_check(get_model("s6"), History()))
    assert empty[4]["measured"] is None and empty[4]["value"] == "nan%"  # JSON has no NaN
    assert "NaN" not in json.dumps(empty)


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


def test_next_steps_point_at_an_average_that_ended_below_the_trained_weights():
    from s6lab.check import next_steps
    from s6lab.train import EpochRecord, History, TrainConfig

    def history(averaged, trained):
        return History([EpochRecord(1, 0.1, 99.0, 0.02, averaged, 0.01, 1.0, raw_test_acc=trained)])

    config = TrainConfig(epochs=19, ema=0.998)
    steps = next_steps(config, 19_602, history=history(99.36, 99.38))
    assert steps[0] == ("average fewer steps (a smaller --ema) or none (--ema 0): at the last epoch the averaged "
                        "weights scored 99.36%, the trained ones 99.38% (docs: Speed, weight averaging)")
    assert not any("--ema" in step for step in next_steps(config, 19_602, history=history(99.38, 99.36)))
    assert not any("--ema" in step for step in next_steps(TrainConfig(epochs=19), 19_602, history=History()))


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
    params, epochs, batchnorm, _, _, last3 = report["requirements"]
    assert (params["target"], params["value"], params["threshold"], params["measured"]) == (
        "< 20,000", "19,602", 20_000, 19_602)
    assert (epochs["threshold"], epochs["measured"], batchnorm["measured"]) == (20, 15, True)
    assert last3["measured"][0] == 99.37 and last3["threshold"] == 99.4 and last3["passed"] is False


def test_version(capsys):
    import pytest

    import s6lab
    from s6lab.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"s6lab {s6lab.__version__}"
