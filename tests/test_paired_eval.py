"""benchmarks/paired_eval.py: the Wilson interval, McNemar's exact test and the paired bootstrap."""

from __future__ import annotations

import json

import pytest

from bench_modules import load_benchmark

PAIRED = load_benchmark("paired_eval")


def test_wilson_interval_known_values():
    assert PAIRED.wilson(5, 40) == pytest.approx((0.0546, 0.2611), abs=1e-4)
    assert PAIRED.wilson(0, 10)[0] == pytest.approx(0.0) and PAIRED.wilson(10, 10)[1] == pytest.approx(1.0)


def test_mcnemar_exact():
    assert PAIRED.mcnemar_exact(3, 10) == pytest.approx(2 * (1 + 13 + 78 + 286) / 2**13)
    assert PAIRED.mcnemar_exact(0, 0) == 1.0 and PAIRED.mcnemar_exact(5, 5) == 1.0


def test_paired_bootstrap_and_the_report(tmp_path, capsys, monkeypatch):
    before, after = [False] * 80 + [True] * 20, [True] * 50 + [False] * 30 + [True] * 20
    lo, hi = PAIRED.paired_bootstrap(before, after, resamples=2000)
    assert lo < 0.5 < hi and lo > 0.3
    for name, xs in (("a", before), ("b", after)):
        (tmp_path / name).write_text("".join(json.dumps({"id": f"p{i}", "correct": x}) + "\n" for i, x in enumerate(xs)))
    monkeypatch.setattr("sys.argv", ["paired_eval", str(tmp_path / "a"), str(tmp_path / "b"), "--chance", "0.25"])
    assert PAIRED.main() == 0
    out = capsys.readouterr().out
    assert "before: 20/100 = 0.200" in out and "after: 70/100 = 0.700" in out and "+0.500" in out and "50 right only after" in out
