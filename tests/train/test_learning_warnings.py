"""`thinkrl rl` says when nothing is learning: each check fires on the metrics built to trigger it,
once, early, and stays silent on the default recipe's real metrics."""

import contextlib
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from thinkrl import config as C
from thinkrl.models import save_pretrained, tiny_model
from thinkrl.report import finish
from thinkrl.train.learning_warnings import CHECKS, TITLES, WINDOW, Watch, check, given
from thinkrl.train.logger import read_metrics

KNOBS = {"group_size": 8, "max_new_tokens": 48, "temperature": 1.0}
# the default recipe (r1_zero) on the embedded model, steps 1-12 as logged (2026-12-05, /tmp/report-runs/r1_zero_short):
# groups/zero_std_frac, response/truncated_frac, entropy, reward/format/mean, reward/accuracy/mean, grad_norm
DEFAULT_RUN = [(0.75, 0.3438, 1.8692, 0.0938, 0.0, 0.7685), (0.5, 0.3438, 1.606, 0.1562, 0.0, 1.0259),
               (0.0, 0.25, 1.2255, 0.3438, 0.0312, 1.4236), (0.0, 0.2188, 1.0847, 0.3125, 0.0, 1.4413),
               (0.0, 0.125, 0.9987, 0.5312, 0.0, 1.8027), (0.0, 0.1562, 0.7901, 0.5625, 0.0, 1.748),
               (0.0, 0.25, 0.9845, 0.5, 0.0938, 1.4598), (0.0, 0.125, 0.9938, 0.5312, 0.125, 1.233),
               (0.0, 0.2188, 1.1622, 0.5312, 0.0625, 1.8791), (0.0, 0.125, 0.6807, 0.6562, 0.0, 1.808),
               (0.0, 0.125, 0.5351, 0.75, 0.0625, 1.4516), (0.0, 0.125, 0.4363, 0.8125, 0.1562, 1.4495)]


def row(equal=0.0, truncated=0.2, entropy=1.0, fmt=0.5, acc=0.1, grad=1.0):
    return {"reward/mean": acc + 0.1 * fmt, "groups/zero_std_frac": equal, "response/truncated_frac": truncated,
            "entropy": entropy, "reward/format/mean": fmt, "reward/accuracy/mean": acc, "grad_norm": grad}


STUCK = {  # each check's condition, alone
    "no_gradient": dict(grad=0.0),
    "groups_all_equal": dict(equal=1.0, acc=0.0),
    "all_truncated": dict(truncated=1.0),
    "entropy_collapsed": dict(entropy=0.014),  # the L1 run that could not move (RESULTS.md)
    "format_never": dict(fmt=0.0),
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_each_warning_fires_alone_after_a_few_steps(name):
    rows = [row(**STUCK[name]) for _ in range(WINDOW)]
    assert check(rows[:-1], KNOBS) == []  # not from fewer steps
    found = check(rows, KNOBS)
    assert [n for n, _ in found] == [name]
    text = found[0][1]
    assert "Turn:" in text  # the knob is always named
    assert any(knob in text for knob in ("sampling.", "task.", "algo.", "optim.", "group_size", "thinkrl eval"))


def test_a_real_collapse_is_seen():
    """The python-tool recipe's 40-step run on the embedded model (2026-12-04): entropy and the share of
    equal-reward groups at steps 29-40; its last 4 steps sample one completion per prompt."""
    late = [(0.0106, 1.0), (0.0857, 0.75), (0.0268, 0.75), (0.0706, 0.5), (0.0432, 0.75), (0.0081, 1.0),
            (0.0114, 0.75), (0.0771, 0.75), (0.0077, 1.0), (0.0081, 1.0), (0.0085, 1.0), (0.0069, 1.0)]
    rows = [row(entropy=h, equal=e) for h, e in late]
    fired = [i for i in range(1, len(rows) + 1) if check(rows[:i], KNOBS)]
    assert fired and fired[0] == 9  # step 37: the first window with a mean below the floor
    assert [n for n, _ in check(rows, KNOBS)] == ["entropy_collapsed"]
    assert "learning stalls" in check(rows, KNOBS)[0][1]
    # that run's training accuracy over those steps: 0.94-1.0, it had solved its task
    accs = [1.0, 0.938, 0.969, 0.938, 0.938, 1.0, 0.969, 0.969, 1.0, 1.0, 1.0, 1.0]
    solved = [row(entropy=h, equal=e, acc=a) for (h, e), a in zip(late, accs)]
    text = dict(check(solved[:9], KNOBS))["entropy_collapsed"]
    assert "training accuracy of 0.98: it has converged" in text and "a harder task" in text


def test_messages_name_the_run_settings_and_the_cause():
    text = dict(check([row(equal=1.0, acc=0.0)] * WINDOW, KNOBS))["groups_all_equal"]
    assert "group of 8 completions" in text and "too hard" in text and "algo.dynamic_sampling" in text
    assert "too easy" in dict(check([row(equal=1.0, acc=1.0)] * WINDOW, KNOBS))["groups_all_equal"]
    assert "sampling.max_new_tokens = 48" in dict(check([row(truncated=1.0)] * WINDOW, KNOBS))["all_truncated"]
    assert "0.0140 nats" in dict(check([row(entropy=0.014)] * WINDOW, KNOBS))["entropy_collapsed"]


def test_silent_on_the_default_recipe_and_on_a_moving_run():
    rows = [row(equal=e, truncated=t, entropy=h, fmt=f, acc=a, grad=g) for e, t, h, f, a, g in DEFAULT_RUN]
    assert all(check(rows[:i], KNOBS) == [] for i in range(1, len(rows) + 1))
    # the whole 40 steps of the recorded demo run (RESULTS.md: `thinkrl rl recipes/r1_zero.toml --out-dir
    # /tmp/demo-new/runs/r1_zero`, held-out 0.005 -> 0.490), its entropy down to 0.07 by the end
    demo = [json.loads(x) for x in (Path(__file__).parent / "r1_zero_demo_steps.jsonl").read_text().splitlines()]
    assert len(demo) == 40 and all(check(demo[:i], KNOBS) == [] for i in range(1, 41))
    assert check([row(entropy=0.04 + 0.01 * i) for i in range(WINDOW)], KNOBS) == []  # the L1 run that moved: 0.04+
    assert check([row(fmt=0.0)] * (WINDOW - 1) + [row(fmt=0.03)], KNOBS) == []  # the format appeared once
    assert check([row(equal=1.0)] * (WINDOW - 1) + [row(equal=0.75)], KNOBS) == []  # one group differed
    assert check([{"reward/mean": 0.0}] * WINDOW, KNOBS) == []  # nothing measured, nothing said


def test_once_each_and_not_again_after_a_resume():
    watch = Watch(KNOBS)
    seen = [watch.see(row(fmt=0.0, truncated=1.0)) for _ in range(WINDOW + 3)]
    assert [sorted(n for n, _ in s) for s in seen] == [[]] * (WINDOW - 1) + [["all_truncated", "format_never"]] + [[]] * 3
    logged = [{"step": i + 1, **r} for i, r in enumerate(watch.rows)] + [{"step": WINDOW, "warning/format_never": "x"},
                                                                          {"step": 0, "eval/pass@1": 0.0}]
    resumed = Watch(KNOBS, logged)
    assert len(resumed.rows) == WINDOW + 3 and resumed.given == {"format_never"}
    assert [n for n, _ in resumed.see(row(fmt=0.0, truncated=1.0))] == ["all_truncated"]
    assert given(logged) == [("the format never appeared", "x")]


def test_a_tiny_run_that_learns_nothing_says_so(tmp_path):
    """A random tiny model with its output layer scaled 100x (logits so peaked it always samples the
    same token: entropy near 0, groups of identical completions, equal rewards, zero gradient), every
    completion cut at 4 tokens, never the format: all five warnings, once each."""
    import thinkrl.train.rl as rl

    model, tok = tiny_model("llama", seed=5)
    with torch.no_grad():
        model.lm_head.weight.mul_(100.0)
    model_dir = save_pretrained(model, tok, tmp_path / "tiny")
    over = {"model.name": str(model_dir), "out_dir": str(tmp_path / "run"), "task.name": "arithmetic",
            "task.template": "raw", "task.digits": "1,1", "task.ops": "+", "task.num_eval": 20, "steps": WINDOW + 1, "prompts_per_step": 2,
            "group_size": 2, "sampling.max_new_tokens": 4, "eval.limit": 0,
            "rewards.format_soft": 0.5, "sample_every": 0}
    cfg = C.load(C.RLConfig, None, [f"{k}={v}" for k, v in over.items()])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rl.train(cfg, show_progress=False)
    rows = read_metrics(tmp_path / "run")
    warned = [k for r in rows for k in r if k.startswith("warning/")]
    assert sorted(warned) == sorted(f"warning/{n}" for n in CHECKS)  # each once
    assert all(r["step"] == WINDOW for r in rows if any(k.startswith("warning/") for k in r))  # early: at WINDOW
    printed = out.getvalue() + err.getvalue()
    assert printed.count("warning: ") == 2 * len(CHECKS)  # as it happened, and in the summary
    assert "warning: every group had equal rewards (why, and what to turn: report.html)" in printed

    class Text(HTMLParser):
        data = ""

        def handle_data(self, d):
            self.data += d

    page = Text()
    page.feed((tmp_path / "run" / "report.html").read_text(encoding="utf-8"))
    assert "Warnings: is anything learning?" in page.data and "algo.dynamic_sampling = true" in page.data
    assert "group of 2 completions" in page.data  # the run's own group_size

    # a run logged before the checks existed: `thinkrl report` runs them over its log
    path = tmp_path / "run" / "metrics.jsonl"
    path.write_text("".join(x + "\n" for x in path.read_text().splitlines() if "warning/" not in x))
    with contextlib.redirect_stdout(io.StringIO()):
        finish(tmp_path / "run")
    again = Text()
    again.feed((tmp_path / "run" / "report.html").read_text(encoding="utf-8"))
    assert all(t in again.data for t in TITLES.values()) and "group of 2 completions" in again.data
