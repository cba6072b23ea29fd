"""Tasks: sizes, disjoint and deterministic splits, the countdown checker, jsonl errors, config checks."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thinkrl.errors import UserError
from thinkrl.prompts import build_messages
from thinkrl.tasks import TaskConfig, get_task
from thinkrl.tasks.base import Problem
from thinkrl.tasks.countdown import check, evaluate_equation
from thinkrl.verify import extract_answer

SMALL = {"num_train": 300, "num_eval": 100}


def task(name: str = "gsm8k", **knobs):
    return get_task(TaskConfig(name=name, **knobs))


def assert_disjoint(t):
    train, eval_ = t.problems("train"), t.problems("eval")
    assert not {p.id for p in train} & {p.id for p in eval_}
    assert not {p.question for p in train} & {p.question for p in eval_}


def assert_examples_score(t):
    """Worked examples use the answer format and are right by the task's own verifier."""
    examples = t.examples()
    assert examples
    eval_questions = {p.question for p in t.problems("eval")}
    for question, response in examples:
        assert question not in eval_questions
        assert response.startswith("<think>") and "</think> <answer>" in response
        assert response.endswith("</answer>")


# ----------------------------------------------------------------------------- gsm8k, aime


def test_gsm8k_split_sizes_and_disjointness():
    t = task("gsm8k")
    train, eval_ = t.problems("train"), t.problems("eval")
    assert (len(train), len(eval_)) == (1000, 319)
    assert_disjoint(t)
    assert len({p.id for p in train + eval_}) == 1319
    assert all(p.id.startswith("gsm8k-test-") for p in train + eval_)
    assert all(p.answer.lstrip("-").replace(".", "").isdigit() for p in train + eval_)  # no "1,600"


def test_gsm8k_split_is_fixed_and_eval_size_takes_a_subset():
    a, b = task("gsm8k"), task("gsm8k", seed=99)  # task.seed does not move the split
    assert [p.id for p in a.problems("eval")] == [p.id for p in b.problems("eval")]
    small = task("gsm8k", eval_size=50).problems("eval")
    assert len(small) == 50
    assert {p.id for p in small} <= {p.id for p in a.problems("eval")}


def test_gsm8k_examples_come_from_train_without_calculator_notes():
    t = task("gsm8k")
    assert_examples_score(t)
    train = {p.question: p for p in t.problems("train")}
    for question, response in t.examples():
        assert question in train and "<<" not in response and "####" not in response
        assert t.score(response, train[question]) == 1.0


def test_gsm8k_scoring():
    t = task("gsm8k")
    p = t.problems("eval")[0]
    assert t.score(f"<think>x</think> <answer>{p.answer}</answer>", p) == 1.0
    assert t.score(f"so the answer is \\boxed{{{p.answer}}}", p) == 1.0
    assert t.score(f"<answer>{int(p.answer) + 1}</answer>", p) == 0.0
    assert t.score(f"<answer>{p.answer}", p) == 0.0  # unclosed tag is no answer


def test_aime2025_is_30_eval_problems_and_eval_only():
    t = task("aime2025")
    problems = t.problems("eval")
    assert len(problems) == 30 and len({p.id for p in problems}) == 30
    with pytest.raises(UserError, match="eval-only"):
        t.problems("train")
    degrees = next(p for p in problems if "circ" in p.answer)  # one reference is "336^\circ"
    assert t.score("<answer>336</answer>", degrees) == 1.0


@pytest.mark.parametrize("name", ["gsm8k", "aime2025", "arithmetic", "countdown"])
def test_unknown_split_is_a_user_error(name):
    with pytest.raises(UserError, match="split"):
        task(name, **({} if name in ("gsm8k", "aime2025") else SMALL)).problems("test")


# ----------------------------------------------------------------------------- arithmetic


def test_arithmetic_sizes_determinism_and_answers():
    a = task("arithmetic", **SMALL, operands=3)
    assert (len(a.problems("train")), len(a.problems("eval"))) == (300, 100)
    assert a.problems("train") == task("arithmetic", **SMALL, operands=3).problems("train")
    assert a.problems("eval") != task("arithmetic", **SMALL, operands=3, seed=1).problems("eval")
    for p in a.problems("train")[:50] + a.problems("eval")[:50]:
        expr = p.question.removeprefix("What is ").removesuffix("?")
        assert evaluate_equation(expr)[0] == int(p.answer)  # an independent parser agrees
        assert len(p.meta["numbers"]) == 3


def test_arithmetic_eval_questions_never_in_train():
    """A tiny question space (1-digit a+b: 100 questions) forces collisions between the streams."""
    t = task("arithmetic", num_train=1000, num_eval=40, operands=2, min_digits=1, max_digits=1, ops="+")
    train, eval_ = t.problems("train"), t.problems("eval")
    assert len(eval_) == 40 and 0 < len(train) <= 60
    assert_disjoint(t)


def test_arithmetic_digits_and_ops_are_respected():
    t = task("arithmetic", **SMALL, min_digits=2, max_digits=2, ops="*")
    for p in t.problems("train"):
        assert all(10 <= n <= 99 for n in p.meta["numbers"]) and set(p.meta["ops"]) == {"*"}


def test_arithmetic_examples_show_real_steps():
    t = task("arithmetic", **SMALL)
    assert_examples_score(t)
    for question, response in t.examples():
        expr = question.removeprefix("What is ").removesuffix("?")
        answer = str(evaluate_equation(expr)[0])
        assert t.score(response, Problem("x", question, answer)) == 1.0
        assert "=" in response.split("</think>")[0]


def test_arithmetic_checked_examples_show_steps_before_the_check():
    """A check adds "=" signs: "54 * 0 = 0. Check: 0 * 54 = 0" must not pass for a worked example."""
    checked = task("arithmetic", num_eval=200, digits="2,1", ops="*", solution_style="checked")
    worked = task("arithmetic", num_eval=200, digits="2,1", ops="*")
    for question, response in checked.examples():
        steps = response.removeprefix("<think>").split("</think>")[0]
        assert steps.split(". Check: ")[0].count("=") >= 2, response
    assert [q for q, _ in checked.examples()] == [q for q, _ in worked.examples()]


def test_arithmetic_worked_product_format():
    from thinkrl.tasks.arithmetic import worked_steps

    assert worked_steps([54, 8], ["*"]) == "54 * 8 = 50 * 8 + 4 * 8 = 400 + 32 = 432"
    assert worked_steps([3, 4, 5], ["+", "*"]) == "4 * 5 = 20. 3 + 20 = 23"


# ----------------------------------------------------------------------------- countdown


@pytest.fixture(scope="module")
def countdown():
    return task("countdown", **SMALL)


def test_countdown_solutions_score_and_splits_are_disjoint(countdown):
    train, eval_ = countdown.problems("train"), countdown.problems("eval")
    assert (len(train), len(eval_)) == (300, 100)
    key = lambda p: (tuple(sorted(p.meta["numbers"])), p.meta["target"])  # noqa: E731
    assert not {key(p) for p in train} & {key(p) for p in eval_}
    for p in train + eval_:
        assert p.answer == str(p.meta["target"]) and 1 <= p.meta["target"] <= 1000
        assert countdown.score(f"<think>.</think> <answer>{p.meta['solution']}</answer>", p) == 1.0


def test_countdown_is_deterministic(countdown):
    again = task("countdown", **SMALL)
    assert countdown.problems("eval") == again.problems("eval")
    assert countdown.problems("eval") != task("countdown", **SMALL, seed=7).problems("eval")


@pytest.mark.parametrize(
    "answer, ok",
    [
        ("(3 + 5) * 2", True),
        ("2 * (5 + 3)", True),
        ("(3 + 5) * 2 = 16", True),  # the left side of '=' is the equation
        ("$(3+5) \\times 2$", True),
        ("(3+5)×2", True),
        ("\\boxed{(3+5) \\cdot 2}", True),
        ("3 + 5 * 2", False),  # 13
        ("(3 + 5) * 2 * 1", False),  # an extra number
        ("8 * 2", False),  # numbers not given
        ("(3 + 3) * 2", False),  # 5 missing, 3 twice
        ("(3 + 5) * 2 + 0", False),
        ("16", False),
        ("-(3 - 5) * 8", False),  # unary minus is not part of the language
        ("(3 + 5) * 2)", False),
        ("((3 + 5) * 2", False),
        ("3 ** 5 * 2", False),
        ("2 * (5 + 3) / (3 - 3)", False),
        ("", False),
        ("(3 + 5) * 2.0", False),
        ("__import__('os')", False),
    ],
)
def test_countdown_checker(answer, ok):
    assert check(answer, [3, 5, 2], 16) is ok


def test_countdown_division_is_exact_and_by_zero_is_wrong():
    assert check("(1 + 2) / 3 * 6", [1, 2, 3, 6], 6)
    assert check("6 / (4 - 4 / 1) ", [6, 4, 4, 1], 6) is False  # division by zero
    assert check("7 / 2 * 4", [7, 2, 4], 14)


def test_countdown_vote_key(countdown):
    assert countdown.vote_key("(3 + 5) * 2") == countdown.vote_key("2*(5+3)") == "16"
    assert countdown.vote_key("not an equation") == "not an equation"


def test_countdown_examples(countdown):
    assert_examples_score(countdown)
    for question, response in countdown.examples():
        numbers = [int(n) for n in question.split("[")[1].split("]")[0].split(", ")]
        target = int(question.split("equals ")[1].split(".")[0])
        assert check(extract_answer(response), numbers, target)


def test_countdown_hostile_answers_are_bounded():
    hostile = ["(" * 100_000, "1+" * 100_000 + "1", "(" * 25 + "1" + ")" * 25, "9" * 10_000, "1/" * 50 + "1"]
    for text in hostile:
        start = time.perf_counter()
        assert check(text, [1], 1) is False
        assert time.perf_counter() - start < 0.5


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.text(alphabet="0123456789+-*/() =", max_size=300)))
def test_countdown_checker_never_raises(text):
    assert check(text, [3, 5, 2], 16) in (True, False)
    evaluate_equation(text)


# ----------------------------------------------------------------------------- jsonl


def write(tmp_path, text: str | bytes, name: str = "data.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def rows(n: int) -> str:
    return "\n".join(json.dumps({"question": f"q{i}?", "answer": i if i % 2 else f"{i}"}) for i in range(n))


def test_jsonl_split_ids_and_determinism(tmp_path):
    path = write(tmp_path, rows(50) + "\n\n")
    t = task(f"jsonl:{path}")
    train, eval_ = t.problems("train"), t.problems("eval")
    assert (len(train), len(eval_)) == (45, 5)
    assert_disjoint(t)
    assert {p.id for p in train + eval_} == {f"data.jsonl-{i}" for i in range(1, 51)}
    assert all(isinstance(p.answer, str) for p in train)
    assert [p.id for p in task(f"jsonl:{path}").problems("eval")] == [p.id for p in eval_]
    assert t.score("<answer>3</answer>", next(p for p in train + eval_ if p.question == "q3?")) == 1.0


def test_jsonl_duplicate_questions_stay_on_one_side(tmp_path):
    path = write(tmp_path, "\n".join([rows(20), rows(20)]))
    assert_disjoint(task(f"jsonl:{path}", eval_fraction=0.5))


def test_jsonl_custom_fields_and_fractions(tmp_path):
    path = write(tmp_path, "\n".join(json.dumps({"p": f"q{i}", "a": 1.5}) for i in range(10)))
    t = task(f"jsonl:{path}", prompt_field="p", answer_field="a", eval_fraction=1.0)
    assert (len(t.problems("train")), len(t.problems("eval"))) == (0, 10)
    assert t.problems("eval")[0].answer == "1.5"
    assert len(task(f"jsonl:{path}", prompt_field="p", answer_field="a", eval_fraction=0.0).problems("eval")) == 0


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "no problems"),
        ("\n  \n", "no problems"),
        ('{"question": "a", "answer": 1}\n{"question": "b", answer: 2}\n', r"data.jsonl:2: not valid JSON \("),
        ('{"question": "a", "answer": 1}\n\n{"prompt": "b", "answer": 2}', r":3: missing field 'question' \(set task.prompt_field"),
        ('{"question": "a"}', r":1: missing field 'answer' \(set task.answer_field"),
        ('{"question": 5, "answer": 1}', r":1: field 'question' must be a string, got number"),
        ('{"question": "a", "answer": {"x": 1}}', r":1: field 'answer' must be a string, a number or a list of them"),
        ('{"question": "a", "answer": [1, {}]}', r":1: field 'answer' item 2 must be a string or a number, got object"),
        ('{"question": "a", "answer": []}', r":1: field 'answer' is an empty list"),
        ('{"question": "a", "answer": true}', "got boolean"),
        ('{"question": "a", "answer": null}', "got null"),
        ('{"question": "  ", "answer": 1}', r":1: field 'question' is empty"),
        ('{"question": "a", "answer": ""}', r":1: field 'answer' is empty"),
        ("[1, 2]", r":1: expected a JSON object"),
        (b'{"question": "a", "answer": 1}\n{"question": "\xff", "answer": 1}', r":2: not valid UTF-8"),
    ],
)
def test_jsonl_errors_are_one_line_user_errors(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(UserError, match=message) as err:
        task(f"jsonl:{path}")
    assert "\n" not in str(err.value)


def test_jsonl_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        task(f"jsonl:{tmp_path / 'nope.jsonl'}")
    with pytest.raises(UserError, match="not a file"):
        task(f"jsonl:{tmp_path}")


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "knobs, key",
    [
        ({"name": "mnist"}, "task.name"),
        ({"name": "jsonl:"}, "task.name"),
        ({"template": "chatml"}, "task.template"),
        ({"shots": -1}, "task.shots"),
        ({"eval_size": 0}, "task.eval_size"),
        ({"eval_size": 500}, "task.eval_size"),
        ({"num_eval": 0}, "task.num_eval"),
        ({"operands": 1}, "task.operands"),
        ({"min_digits": 3, "max_digits": 2}, "task.max_digits"),
        ({"ops": "+/"}, "task.ops"),
        ({"ops": ""}, "task.ops"),
        ({"numbers": 9}, "task.numbers"),
        ({"eval_fraction": 1.5}, "task.eval_fraction"),
        ({"prompt_field": " "}, "task.prompt_field"),
        ({"shots": "2"}, "task.shots"),
        ({"num_train": True}, "task.num_train"),
    ],
)
def test_config_errors_name_the_key(knobs, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        TaskConfig(**knobs)


def test_config_defaults_and_int_for_float():
    cfg = TaskConfig(eval_fraction=1)
    assert (cfg.name, cfg.template, cfg.shots) == ("gsm8k", "r1_zero", 0)


@pytest.mark.parametrize("name", ["arithmetic", "countdown", "gsm8k"])
def test_one_shot_prompt_uses_a_train_example(name):
    t = task(name, **({} if name == "gsm8k" else SMALL))
    messages = build_messages(t.problems("eval")[0], t, template="r1_zero", shots=1)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == t.examples()[0][1]


def test_arithmetic_solutions_at_three_lengths_by_hand():
    from thinkrl.tasks.arithmetic import written_steps

    assert written_steps([54, 8], ["*"], "short") == "54 * 8 = 432"
    assert written_steps([54, 8], ["*"], "worked") == "54 * 8 = 50 * 8 + 4 * 8 = 400 + 32 = 432"
    assert written_steps([54, 8], ["*"], "checked") == ("54 * 8 = 50 * 8 + 4 * 8 = 400 + 32 = 432. "
                                                        "Check: 8 * 54 = 8 * 50 + 8 * 4 = 400 + 32 = 432")
    assert written_steps([3, 1, 76], ["*", "+"], "checked") == "3 * 1 = 3. 3 + 76 = 79. Check: 1 * 3 = 3. 76 + 3 = 79"
    assert written_steps([5, 76], ["-"], "checked") == "5 - 76 = -71. Check: 5 - 76 = -71"  # "-" is not reversed


def test_mixed_solution_style_takes_each_length_in_turn_and_every_one_scores():
    task = get_task(TaskConfig(name="arithmetic", digits="2,1", ops="*", num_eval=50, solution_style="mixed"))
    problems = task.problems("train")[:30]
    written = [task.solution(p)[0] for p in problems]
    assert sum(" = " in w and w.count("=") == 1 for w in written[1::3]) == 10  # short: one "=", every third from 1
    assert all("Check: " in w for w in written[2::3]) and not any("Check: " in w for w in written[0::3])
    assert all(task.score(f"<think>{w}</think> <answer>{p.answer}</answer>", p) == 1.0 for w, p in zip(written, problems))
    with pytest.raises(UserError, match="task.solution_style"):
        TaskConfig(solution_style="long")


def test_weighted_solution_styles_cycle_by_problem_number():
    from thinkrl.tasks.arithmetic import style_cycle

    assert style_cycle("mixed") == ["worked", "short", "checked"]
    assert style_cycle("checked:2,short") == ["checked", "checked", "short"]
    assert style_cycle("checked:x") is None and style_cycle("long:1") is None and style_cycle("") is None
    task = get_task(TaskConfig(name="arithmetic", digits="2,1", ops="*", num_eval=50, solution_style="checked:3,worked:1"))
    written = [task.solution(p)[0] for p in task.problems("train")[:40]]
    assert sum("Check: " in w for w in written) == 30
    with pytest.raises(UserError, match="checked:6,worked:3,short:1"):
        TaskConfig(solution_style="checked:two")
