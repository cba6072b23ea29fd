"""Preference pairs: file errors that name file:line and key, both formats, the split by prompt,
and pairs built from `thinkrl eval` completions."""

import json

import pytest

from thinkrl.data.chat import conversation
from thinkrl.data.pairs import load_pairs, make_pairs, split_pairs
from thinkrl.errors import UserError


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"prompt": "q", "chosen": "a", rejected: "b"}', r"pairs.jsonl:2: not valid JSON"),
        ('["q", "a", "b"]', r"pairs.jsonl:2: expected an object"),
        ('{"prompt": "q", "chosen": "a"}', r"pairs.jsonl:2: missing key 'rejected'"),
        ('{"chosen": "a", "rejected": "b"}', r"pairs.jsonl:2: missing key 'prompt'"),
        ('{"prompt": "q", "chosen": "a", "rejected": 3}', r"pairs.jsonl:2: key 'rejected' must be a non-empty string"),
        ('{"prompt": "", "chosen": "a", "rejected": "b"}', r"pairs.jsonl:2: key 'prompt' is empty"),
        ('{"prompt": [{"role": "user"}], "chosen": "a", "rejected": "b"}', r"pairs.jsonl:2: key 'prompt', message 0"),
        ('{"prompt": "q", "chosen": "same", "rejected": "same"}', r"pairs.jsonl:2: 'chosen' and 'rejected' are the same"),
        ('{"chosen": [{"role": "user", "content": "q"}], "rejected": [{"role": "user", "content": "q"}, '
         '{"role": "assistant", "content": "b"}]}', r"pairs.jsonl:2: key 'chosen': the last message must be the assistant's"),
        ('{"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}], "rejected": '
         '[{"role": "assistant", "content": "b"}]}', r"pairs.jsonl:2: key 'prompt' goes with string"),
    ],
)
def test_preference_file_errors_name_file_line_and_key(tmp_path, line, message):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n' + line + "\n")
    with pytest.raises(UserError, match=message):
        load_pairs(path)


def test_both_formats_and_a_split_by_prompt(tmp_path):
    conv = [{"role": "system", "content": "s"}, {"role": "user", "content": "q2"}]
    rows = [{"prompt": f"q{i % 10}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(30)]
    rows.append({"chosen": conv + [{"role": "assistant", "content": "yes"}], "rejected": conv + [{"role": "assistant", "content": "no"}]})
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    pairs = load_pairs(path)
    assert pairs[0].chosen == conversation("q0", "good 0") == [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "good 0"}]
    assert pairs[-1].rejected[-1] == {"role": "assistant", "content": "no"} and pairs[-1].where.endswith("p.jsonl:31")
    train, held = split_pairs(pairs, 0.2, seed=0)
    assert len(train) + len(held) == len(pairs) and held
    assert not {p.prompt_key for p in train} & {p.prompt_key for p in held}  # a held-out prompt is never trained on
    assert [p.where for p in split_pairs(pairs, 0.2, seed=0)[1]] == [p.where for p in held]
    assert split_pairs(pairs, 0.0, seed=0) == (pairs, [])


def _row(pid, sample, correct, formatted, finish="stop", text=None):
    return {"id": pid, "sample": sample, "correct": correct, "formatted": formatted, "finish_reason": finish,
            "text": text or f"<think>t{sample}</think> <answer>{pid}-{sample}</answer>"}


def test_make_pairs_pairs_good_with_bad_completions_of_the_same_prompt():
    rows = [_row("a", 0, True, True), _row("a", 1, False, True), _row("a", 2, True, False), _row("a", 3, True, True),
            _row("b", 0, True, True), _row("b", 1, True, True),  # no bad one: no pair
            _row("c", 0, False, False, "length"), _row("c", 1, False, False)]
    pairs = make_pairs(rows, {"a": "qa", "b": "qb", "c": "qc"})
    assert [(p["id"], p["prompt"], p["chosen"][-12:], p["rejected"][-12:]) for p in pairs] == [
        ("a", "qa", "a-0</answer>", "a-1</answer>"), ("a", "qa", "a-3</answer>", "a-2</answer>")]
    concise = make_pairs(rows, {"a": "qa", "b": "qb", "c": "qc"}, criterion="concise", part="answer")
    assert [(p["id"], p["chosen"], p["rejected"]) for p in concise] == [("c", "c-1", "c-0")]
    assert len(make_pairs(rows, {"a": "qa", "b": "qb", "c": "qc"}, per_prompt=1)) == 1
    with pytest.raises(UserError, match="completion id 'c'"):
        make_pairs(rows, {"a": "qa", "b": "qb"})
