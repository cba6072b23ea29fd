"""A run at a glance: the printed summary and report.html (self-contained, escaped, complete)."""

import json
from html.parser import HTMLParser

import pytest

from thinkrl import config as C
from thinkrl.cli import main
from thinkrl.models import save_pretrained, tiny_model
from thinkrl.report import finish
from thinkrl.run_summary import before_after_example, summary_lines, summarize, wilson


class Page(HTMLParser):
    """What a test needs of a page: title, tags, table rows, attributes, text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.rows, self.data, self.title, self._in_title = [], [], 0, [], "", False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        self.rows += tag == "tr"
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        self.data.append(data)
        if self._in_title:
            self.title += data

    @property
    def text(self):
        return "".join(self.data)


def check_self_contained(page: Page) -> None:
    """No script, no stylesheet link, no image or anything else loaded from a URL."""
    assert not {"script", "link", "iframe", "img", "object", "embed"} & set(page.tags)
    for name, value in page.attrs:
        if name in ("src", "href", "action", "data"):
            assert not (value or "").lower().startswith(("http:", "https:", "//", "javascript:")), (name, value)
        if name != "xmlns":  # the SVG namespace is a name, never fetched
            assert "http" not in (value or "").lower(), (name, value)


def test_wilson_interval():
    lo, hi = wilson(0.0, 100)
    assert lo == 0.0 and hi == pytest.approx(0.0370, abs=1e-4)  # not empty at 0, unlike p +- 1.96 se
    lo, hi = wilson(0.5, 100)
    assert (lo, hi) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))
    lo, hi = wilson(1.0, 20)
    assert hi == 1.0 and lo == pytest.approx(0.8389, abs=1e-4)
    assert wilson(0.5, None) is None and wilson(0.5, 0) is None


def test_the_example_prefers_a_problem_that_turned_right():
    s = [{"eval": True, "step": 0, "id": "a", "correct": False, "text": "x"},
         {"eval": True, "step": 0, "id": "b", "correct": False, "text": "y"},
         {"eval": True, "step": 5, "id": "a", "correct": False, "text": "x2"},
         {"eval": True, "step": 5, "id": "b", "correct": True, "text": "y2", "question": "q", "reference": "1"},
         {"step": 5, "id": "b", "text": "a training sample", "reward": 1.0}]
    ex = before_after_example(s, 0, 5)
    assert ex["id"] == "b" and ex["before"]["text"] == "y" and ex["after"]["text"] == "y2" and ex["question"] == "q"
    assert before_after_example(s, 0, 0) is None
    assert before_after_example(s, 0, 7) is None  # nothing logged at that step


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny RL run of 4 steps, evaluated at 0, 2 and 4; (its folder, what it printed)."""
    import thinkrl.train.rl as rl

    model, tok = tiny_model("llama", seed=5)
    model_dir = save_pretrained(model, tok, tmp_path_factory.mktemp("m") / "tiny")
    out = tmp_path_factory.mktemp("run") / "rl"
    over = {"model.name": str(model_dir), "out_dir": str(out), "task.name": "arithmetic", "task.template": "raw",
            "task.digits": "1,1", "task.ops": "+", "task.num_eval": 20, "steps": 4, "prompts_per_step": 2,
            "group_size": 4, "sampling.max_new_tokens": 8, "eval.limit": 6, "eval.every": 2,
            "eval.sampling.max_new_tokens": 8, "sample_every": 2, "rewards.format_soft": 0.5}
    cfg = C.load(C.RLConfig, None, [f"{k}={v}" for k, v in over.items()])
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rl.train(cfg, show_progress=False)
    return out, buf.getvalue()


def test_a_run_ends_with_its_summary(tiny_run):
    out, printed = tiny_run
    lines = printed[printed.index("== rl summary"):].splitlines()
    assert lines[0] == f"== rl summary: {out} =="
    acc = next(x for x in lines if x.startswith("held-out accuracy: "))
    assert "(step 0) -> " in acc and "(step 4)" in acc and "95% Wilson interval over 6 problems" in acc
    assert acc.count("[") == 2  # an interval before and after
    assert any(x.startswith("format rate: ") and "->" in x for x in lines)
    assert any(x.startswith("mean response tokens: ") and "->" in x for x in lines)
    assert any(x.startswith("time: ") and "wall clock, 4 steps" in x for x in lines)
    assert any(x.startswith("held-out problem ") and "(reference " in x for x in lines)
    assert any(x.startswith("  before ") for x in lines) and any(x.startswith("  after ") for x in lines)
    assert lines[-1] == f"report: {out / 'report.html'}"
    assert len(lines) <= 12  # at a glance


def test_report_html_is_complete_and_self_contained(tiny_run):
    out, _ = tiny_run
    page = Page((out / "report.html").read_text(encoding="utf-8"))
    assert page.title == f"thinkrl rl: {out.name}"
    check_self_contained(page)
    assert page.tags.count("svg") >= 3  # reward, held-out, length curves at least
    assert page.rows >= 1 + 3  # the evaluation table: steps 0, 2, 4 across; accuracy, interval, n, ... down
    assert all(f"step {s}" in page.text for s in (0, 2, 4)) and "95% interval" in page.text
    for heading in ("Summary", "Curves", "Evaluations", "Sampled training completions", "Config"):
        assert heading in page.text
    assert "group_size = 4" in page.text and "[eval.sampling]" in page.text  # the resolved config
    assert "reward/format_soft" in page.text  # the samples' rewards
    assert "None of the checks fired" in page.text  # 4 steps: too few for any "nothing is learning" warning


def test_report_rebuilds_and_escapes_model_text(tiny_run, capsys):
    out, _ = tiny_run
    hostile = '<script>alert("x")</script><img src="http://example.com/a.png"> & </pre>'
    rows = [{"step": 0, "eval": True, "id": "evil", "question": hostile, "reference": "<u>1</u>", "text": "no",
             "correct": False},
            {"step": 4, "eval": True, "id": "evil", "question": hostile, "reference": "<u>1</u>", "text": hostile,
             "correct": True},  # turned right: the example shown before and after
            {"step": 4, "id": "evil", "reference": "1", "text": hostile, "reward": 0.5}]  # the first sample shown
    path = out / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + path.read_text(encoding="utf-8"), encoding="utf-8")
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "== rl summary" in printed and "wall clock" in printed  # the stage and time the run recorded
    page = Page((out / "report.html").read_text(encoding="utf-8"))
    check_self_contained(page)
    assert page.text.count(hostile) >= 4  # shown as text, whole: question and answer of the example, the sample
    assert "<u>1</u>" in page.text and "u" not in page.tags


def test_report_of_a_pipeline_and_bad_folders(tmp_path, capsys):
    stages = [{"stage": "base", "model": "m", "n": 50, "pass@1": 0.1, "format_rate": 0.5, "mean_response_tokens": 30.0,
               "truncated_rate": 0.0},
              {"stage": "reasoning_rl", "model": "m2", "n": 50, "pass@1": 0.4, "format_rate": 0.9,
               "mean_response_tokens": 25.0, "truncated_rate": 0.0}]
    (tmp_path / "report.json").write_text(json.dumps({"task": "arithmetic", "eval_problems": 50, "stages": stages}))
    (tmp_path / "3-reasoning_rl").mkdir()
    (tmp_path / "3-reasoning_rl" / "report.html").write_text("<html></html>")
    path = finish(tmp_path, wall_seconds=90.0)  # the stage guessed from report.json
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("== pipeline summary")
    assert "0.100 [" in lines[1] and "(base) -> 0.400 [" in lines[1] and "(reasoning_rl), +0.300" in lines[1]
    assert "time: 1.5 min (wall clock)" in lines
    page = Page(path.read_text(encoding="utf-8"))
    check_self_contained(page)
    assert ("href", "3-reasoning_rl/report.html") in page.attrs and page.rows == 1 + 6  # accuracy, interval, n, format, length, truncated
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "absent not found" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "3-reasoning_rl")]) == 2
    assert "holds no run" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--stage", "rll"]) == 2


def test_summary_without_evaluations_or_n():
    s = {"stage": "sft", "run_dir": "r", "steps": 3, "before": ("step 0", {"loss": 2.0}), "after": ("step 3", {"loss": 1.5}),
         "wall_seconds": None, "wall_from": "", "example": None, "pairwise": False, "evals": []}
    assert summary_lines(s) == ["== sft summary: r ==", "held-out loss: 2.0000 -> 1.5000"]
    s.update(before=None, after=("step 3", {"accuracy": 0.5}))
    assert summary_lines(s)[1] == "held-out accuracy: 0.500 (step 3); no interval: n unknown"


def test_summarize_reads_a_run_without_samples(tmp_path):
    rows = [{"step": 0, "eval/accuracy": 0.5}, {"step": 1, "train/loss": 0.7, "time/step": 2.0},
            {"step": 1, "eval/accuracy": 0.75}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 2, "torn')
    (tmp_path / "results.json").write_text(json.dumps({"eval_pairs": 40}))
    s = summarize(tmp_path, "rm")
    assert s["before"][1] == {"step": 0, "accuracy": 0.5, "n": 40} and s["after"][1]["accuracy"] == 0.75
    assert s["wall_seconds"] == 2.0 and s["steps"] == 1
    assert "held-out pairwise accuracy" in summary_lines(s)[1] and "over 40 pairs" in summary_lines(s)[1]


def test_report_of_distill_and_sample(tmp_path, capsys):
    from thinkrl.report import finish_sample

    ev = lambda p: {"n": 40, "pass@1": p, "format_rate": 1.0, "mean_response_tokens": 20.0, "truncated_rate": 0.0}  # noqa: E731
    (tmp_path / "report.json").write_text(json.dumps({"teacher": "t", "teacher_eval": ev(0.9), "student_before_eval": ev(0.2),
                                                      "student_after_eval": ev(0.5)}))
    page = Page(finish(tmp_path, "distill").read_text(encoding="utf-8"))
    acc = capsys.readouterr().out.splitlines()[1]
    assert "0.200 [" in acc and "(student_before) -> 0.500 [" in acc and "over 40 problems" in acc
    assert page.rows == 1 + 6 and "teacher" in page.text  # the teacher in the table, not in the headline
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "What is <1>?"},
                                             {"role": "assistant", "content": "<answer>1</answer>"}], "id": "p1",
                                "reference": "1"}) + "\n")
    (tmp_path / "d.config.toml").write_text("samples = 4\n")
    stats = {"prompts": 10, "samples": 40, "kept": 1, "verdicts": {"accepted": 1, "wrong": 39}, "seconds": 12.0,
             "sampled": {"pass@1": 0.025, "format_rate": 0.5, "mean_response_tokens": None}}
    path = finish_sample(data, stats)
    lines = capsys.readouterr().out.splitlines()
    assert path.name == "d.report.html" and "sampled accuracy: 0.025 [" in lines[1] and "mean response tokens: -" in lines
    page = Page(path.read_text(encoding="utf-8"))
    check_self_contained(page)
    assert "What is <1>?" in page.text and "<answer>1</answer>" in page.text and "samples = 4" in page.text
