"""The jsonl task with free-text answers (task.answer_type = "text", aliases, worked "response"
lines), and the shipped example: a user corpus and questions answerable from it alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thinkrl import config as C
from thinkrl.errors import UserError
from thinkrl.prompts import build_messages
from thinkrl.tasks import TaskConfig, get_task
from thinkrl.tasks.lookup import normalise_answer

DATA = Path(__file__).resolve().parents[2] / "recipes" / "data"
CORPUS, QUESTIONS = DATA / "brindle_corpus.jsonl", DATA / "brindle_questions.jsonl"


def text_task(tmp_path, lines: list[dict], **knobs):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in lines), encoding="utf-8")
    return get_task(TaskConfig(name=f"jsonl:{path}", answer_type="text", **knobs))


def test_text_answers_match_after_normalisation_and_any_alias(tmp_path):
    t = text_task(tmp_path, [{"question": "Ship?", "answer": ["Grey Heron", "Heron"]},
                             {"question": "Year?", "answer": 1312}], eval_fraction=0.0)  # fmt: skip
    ship, year = t.problems("train")
    assert ship.answer == "Grey Heron" and ship.meta["aliases"] == ["Grey Heron", "Heron"]
    for right in ("<answer>the Grey Heron.</answer>", "<answer>  grey   HERON </answer>", "<answer>Heron</answer>", r"\boxed{Grey Heron}"):
        assert t.score(right, ship) == 1.0, right
    for wrong in ("<answer>Grey</answer>", "<answer>Grey Heron ship</answer>", "no answer tag Grey Heron"):
        assert t.score(wrong, ship) == 0.0, wrong
    assert t.score("<answer>1312</answer>", year) == 1.0 and t.score("<answer>1,312.</answer>", year) == 1.0
    assert t.score("<answer>1312.0</answer>", year) == 0.0  # text: no numeric equivalence
    assert t.vote_key("The Grey Heron!") == t.vote_key("grey heron") == "grey heron"


def test_math_answers_accept_aliases_too(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"question": "x?", "answer": ["1/2", "0.75"]}) + "\n")
    t = get_task(TaskConfig(name=f"jsonl:{path}", eval_fraction=0.0))
    (p,) = t.problems("train")
    assert t.score("<answer>0.5</answer>", p) == 1.0 and t.score("<answer>3/4</answer>", p) == 1.0
    assert t.score("<answer>2</answer>", p) == 0.0
    assert t.vote_key("0.5") == t.vote_key("1/2")  # math mode keeps the math canonical form


def test_response_lines_are_the_examples_train_side_only(tmp_path):
    lines = [{"question": f"q{i}?", "answer": f"a{i}", "response": f"<think>r{i}</think> <answer>a{i}</answer>"} for i in range(10)]
    t = text_task(tmp_path, lines + [{"question": "plain?", "answer": "b"}], eval_fraction=0.3)
    eval_questions = {p.question for p in t.problems("eval")}
    examples = t.examples()
    assert len(examples) >= 7 and not {q for q, _ in examples} & eval_questions
    assert [q for q, _ in examples] == [p.question for p in t.problems("train") if "response" in p.meta]
    messages = build_messages(t.problems("eval")[0], t, shots=2)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[2]["content"] == examples[0][1]


@pytest.mark.parametrize(
    "line, message",
    [
        ({"question": "a", "answer": "The"}, r"qa.jsonl:1: field 'answer' = \"The\" is nothing once normalised"),
        ({"question": "a", "answer": ["x", "?!"]}, r"qa.jsonl:1: field 'answer' item 2 = \"\?!\" is nothing once normalised"),
        ({"question": "a", "answer": ["x", ""]}, r"qa.jsonl:1: field 'answer' item 2 is empty"),
        ({"question": "a", "answer": ["x", ["y"]]}, r"qa.jsonl:1: field 'answer' item 2 must be a string or a number, got array"),
        ({"question": "a", "answer": "x", "response": 3}, r"qa.jsonl:1: field 'response' .* must be a non-empty string"),
        ({"question": "a", "answer": "x", "response": " "}, r"qa.jsonl:1: field 'response'"),
    ],
)
def test_bad_text_lines_are_one_line_errors(tmp_path, line, message):
    with pytest.raises(UserError, match=message) as err:
        text_task(tmp_path, [line])
    assert "\n" not in str(err.value)


def test_answer_type_is_checked():
    with pytest.raises(UserError, match=r"task.answer_type = 'txt'.*math.*text"):
        TaskConfig(name="jsonl:x.jsonl", answer_type="txt")


# ----------------------------------------------------------------------------- the shipped example


def test_example_questions_are_answered_by_their_top_passage(tmp_path):
    """Every question of the example is answerable from the corpus: the first passage a search with
    the question's own text returns holds one of its accepted answers (k = 1, as the recipe sets)."""
    from thinkrl.tools.search import Retriever

    retriever = Retriever(CORPUS, k=1, cache_root=tmp_path)
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    assert 30 <= len(rows) <= 40 and 20 <= len(retriever.passages) <= 40
    for row in rows:
        answers = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
        (top,) = retriever.search(row["question"])
        passage = normalise_answer(f"{top.title} {top.text}")
        assert any(normalise_answer(str(a)) in passage for a in answers), (row["question"], top.id)
        if "response" in row:  # the example turn shows the result the engine would insert
            assert f"<result>{retriever.search_tool(row['question'])}</result>" in row["response"]


def test_search_jsonl_recipe_builds_its_task_and_tool(tmp_path):
    from thinkrl.tools.search import Retriever

    cfg = C.load(C.RLConfig, DATA.parent / "search_jsonl.toml")
    t = get_task(cfg.task)
    assert (len(t.problems("train")), len(t.problems("eval"))) == (28, 7)
    assert len(t.examples()) >= cfg.task.shots
    for question, response in t.examples():
        (p,) = [p for p in t.problems("train") if p.question == question]
        assert t.score(response, p) == 1.0
    assert Retriever(cfg.tools.search.corpus, cache_root=tmp_path).path == Path(cfg.tools.search.corpus)
