"""report.html: one self-contained page per run, readable offline.

Curves are inline SVG drawn here (no script, no stylesheet or font from elsewhere), every text that
came from a model or a file is HTML-escaped, and the page holds: the summary of
thinkrl.run_summary, the curves, the evaluation table, the held-out problem before and after, a
few sampled completions with their rewards, and the resolved config.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from thinkrl.run_summary import read_samples, verdict_of, wilson
from thinkrl.train.logger import read_metrics

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
CHARTS = (  # (title, metric keys drawn together); a chart with none of its keys logged is left out
    ("training reward (sampled completions)", ("reward/mean", "reward/accuracy/mean", "reward/format/mean")),
    ("held-out evaluation", ("eval/pass@1", "eval/format_rate", "eval/accuracy")),
    ("mean response tokens", ("response/len_mean", "eval/mean_response_tokens")),
    ("loss", ("train/nll", "train/loss", "eval/loss", "value_loss")),
    ("groups with equal rewards, truncated completions", ("groups/zero_std_frac", "response/truncated_frac")),
    ("entropy and KL", ("entropy", "kl", "approx_kl")),
    ("gradient norm", ("grad_norm",)),
)
STYLE = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}td.l,th.l{text-align:left}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;
overflow-wrap:anywhere;font-size:12px}.charts{display:flex;flex-wrap:wrap;gap:8px}.warn{background:#fff3cd;
border:1px solid #e0b000;padding:6px 10px;margin:4px 0}.ok{color:#197a19}.bad{color:#b00}"""


def _ticks(lo: float, hi: float, whole: bool = False) -> list[float]:
    """Three ticks: the ends and the middle (rounded down to a whole number for steps)."""
    mid = (lo + hi) / 2
    return [lo, float(int(mid)) if whole and int(mid) > lo else mid, hi]


def svg_chart(title: str, series: dict[str, list[tuple[float, float]]], width: int = 440, height: int = 230) -> str:
    """A line chart of (x, y) series as inline SVG: axes with three ticks each, a legend, a title."""
    pts = [p for s in series.values() for p in s]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if 0 <= y0 and y1 <= 1 and y1 - y0 > 0.05:  # a rate: the whole [0, 1]
        y0, y1 = 0.0, 1.0
    elif 0 < y0 < 0.2 * y1:  # nearly from 0 (a KL of 1e-13, a gradient norm of 1e-5): from 0
        y0 = 0.0
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5 if y0 else -0.5, y1 + 0.5 if y1 else 0.5
    left, right, top, bottom = 52, 10, 38, 26
    fx = lambda x: left + (x - x0) / (x1 - x0) * (width - left - right)  # noqa: E731
    fy = lambda y: height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}"><rect width="100%" height="100%" fill="#fff" stroke="#ccc"/>',
           f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="13">{escape(title)}</text>']
    for y in _ticks(y0, y1):
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{fy(y):.1f}" y2="{fy(y):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{fy(y) + 4:.1f}" text-anchor="end" font-size="10">{y:.3g}</text>')
    for x in _ticks(x0, x1, whole=all(float(v).is_integer() for v in xs)):
        out.append(f'<text x="{fx(x):.1f}" y="{height - 8}" text-anchor="middle" font-size="10">{x:.3g}</text>')
    out.append(f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>'
               f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>')
    lx = left
    for i, (label, s) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        line = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in s)
        out.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.6"/>')
        if len(s) <= 12:  # few points (evaluations): mark each
            out += [f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="2.5" fill="{color}"/>' for x, y in s]
        out.append(f'<text x="{lx}" y="30" font-size="10" fill="{color}">{escape(label)}</text>')
        lx += 7 * len(label) + 14
    out.append("</svg>")
    return "".join(out)


def charts(rows: list[dict]) -> str:
    """The CHARTS whose keys the run logged, side by side."""
    out = []
    for title, keys in CHARTS:
        series = {k: [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))] for k in keys}
        series = {k: s for k, s in series.items() if s}
        if series:
            out.append(svg_chart(title, series))
    return f'<div class="charts">{"".join(out)}</div>' if out else "<p>no curves: nothing was logged</p>"


def table(header: list[str], rows: list[list], left: int = 1) -> str:
    """An HTML table; the first `left` columns left-aligned (names), numbers formatted to 4 digits."""
    def cell(v, i, tag):
        text = f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)
        return f'<{tag}{" class=l" if i < left else ""}>{escape(text)}</{tag}>'

    head = "".join(cell(h, i, "th") for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell(v, i, "td") for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def eval_table(evals: list[tuple[str, dict]]) -> str:
    """One column per evaluation, one row per measure: accuracy with its 95% interval, n, then every
    other measure any of them has (tools/*, budget/*: a long list reads down, not across)."""
    keys = [k for k in dict.fromkeys(k for _, e in evals for k in e) if k not in ("accuracy", "step", "n")]
    cis = [wilson(e.get("accuracy"), e.get("n")) for _, e in evals]
    rows = [["accuracy", *[e.get("accuracy") for _, e in evals]],
            ["95% interval", *[f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else None for ci in cis]],
            ["n", *[e.get("n") for _, e in evals]]]
    rows += [[k, *[e.get(k) for _, e in evals]] for k in keys]
    return f'<div style="overflow-x:auto">{table(["", *[label for label, _ in evals]], rows)}</div>'


def sample_block(s: dict, verdict_key: str = "correct") -> str:
    """One completion: its problem, reference and rewards (or verdict) above the escaped text."""
    facts = [f"step {s.get('step')}", f"problem {s.get('id')}"]
    if s.get("reference") is not None:
        facts.append(f"reference {s['reference']}")
    if verdict_key in s:
        facts.append(verdict_of(s))
    facts += [f"{k} {v:.3g}" for k, v in s.items() if k.startswith("reward") and isinstance(v, (int, float))]
    question = f"<pre>{escape(s['question'])}</pre>" if s.get("question") else ""
    return f"<p>{escape(', '.join(facts))}</p>{question}<pre>{escape(str(s.get('text', '')))}</pre>"


def training_samples(samples: list[dict], per_step: int = 3) -> str:
    """A few sampled training completions with their rewards: from the first and the last step logged."""
    train = [s for s in samples if not s.get("eval")]
    if not train:
        return "<p>no sampled completions were logged (sample_every = 0)</p>"
    steps = sorted({s["step"] for s in train})
    picked = [s for st in dict.fromkeys((steps[0], steps[-1])) for s in [x for x in train if x["step"] == st][:per_step]]
    return "".join(sample_block(s) for s in picked)


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """The whole document: a title, then (heading, html) sections."""
    body = "".join(f"<h2>{escape(h)}</h2>{html}" for h, html in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n")


def _config_text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else "(no config file found)"


def run_page(s: dict, lines: list[str], warnings: list[tuple[str, str]] = ()) -> str:
    """report.html of a run folder, from thinkrl.run_summary.summarize's facts and printed lines."""
    run_dir = Path(s["run_dir"])
    sections = [("Summary", f"<pre>{escape(chr(10).join(lines))}</pre>")]
    if warnings:
        sections.append(("Warnings: is anything learning?", "".join(
            f'<div class="warn"><b>{escape(title)}</b>: {escape(text)}</div>' for title, text in warnings)))
    elif s["stage"] == "rl":
        sections.append(("Warnings: is anything learning?", '<p class="ok">None of the checks fired: gradients '
                         "flowed, groups had different rewards, completions finished, the entropy stayed above its "
                         "floor, the format appeared.</p>"))
    rows = read_metrics(run_dir)
    if rows:
        sections.append(("Curves", charts(rows)))
    if s["evals"]:
        sections.append(("Evaluations", eval_table(s["evals"])))
    links = [p for p in sorted(run_dir.glob("*/report.html"))]
    if links:
        sections.append(("Reports of its stages", "<ul>" + "".join(
            f'<li><a href="{escape(p.relative_to(run_dir).as_posix())}">{escape(p.parent.name)}</a></li>' for p in links)
            + "</ul>"))
    ex = s["example"]
    if ex:
        sections.append((f"One held-out problem before and after ({ex['id']})",
                         sample_block(ex["before"]) + sample_block(ex["after"])))
    samples = read_samples(run_dir)
    if rows:
        sections.append(("Sampled training completions", training_samples(samples)))
    for name in ("results.json", "report.json"):
        if (run_dir / name).is_file():
            sections.append((name, f"<pre>{escape((run_dir / name).read_text(encoding='utf-8'))}</pre>"))
    sections.append(("Config", f"<pre>{escape(_config_text(run_dir / 'config.toml'))}</pre>"))
    return page(f"thinkrl {s['stage']}: {run_dir.name}", sections)


def sample_page(out: Path, stats: dict, lines: list[str], examples: int = 3) -> str:
    """The report of `thinkrl sample` beside its data: its statistics, a few kept examples, its config."""
    kept = []
    if out.is_file():
        with open(out, encoding="utf-8") as f:
            for line in f:
                if len(kept) == examples:
                    break
                row = json.loads(line)
                kept.append({"id": row.get("id"), "reference": row.get("reference"),
                             "question": row["messages"][-2]["content"] if len(row["messages"]) > 1 else None,
                             "text": row["messages"][-1]["content"]})
    sections = [("Summary", f"<pre>{escape(chr(10).join(lines))}</pre>"),
                ("Statistics", f"<pre>{escape(json.dumps(stats, indent=2))}</pre>"),
                ("Kept examples", "".join(sample_block(k) for k in kept) or "<p>none kept</p>"),
                ("Config", f"<pre>{escape(_config_text(out.with_name(out.stem + '.config.toml')))}</pre>")]
    return page(f"thinkrl sample: {out.name}", sections)
