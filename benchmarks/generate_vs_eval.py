"""Does `thinkrl generate`'s default prompt path ask a trained model what `thinkrl eval` asks it?
(issue 22: a trained model remembers how it was prompted.)

For the first N held-out problems of the task a run trained on (its thinkrl_prompt.json), each
question goes through generate's own path: the config `thinkrl generate --model MODEL` resolves
(thinkrl.cli.resolve: the model's prompt set-up below the flags), its messages
(thinkrl.chat.prompt_messages + user_message) and its sampling. It prints how many of those prompts
are token-identical to eval's (thinkrl.evaluate.encode_problems with the config `thinkrl eval
--model MODEL` resolves), and the accuracy and format rate of the completions, scored by the
task's verifier. Compare with `thinkrl eval --model MODEL --limit N`. The prompts are decoded in
batches (the engine's completions do not depend on the batch), not one process per question.

`--without-examples` also asks with shots = 0 (the system turn alone, what generate asked before
the set-up file existed), with the same sampling.

    python benchmarks/generate_vs_eval.py --model runs/r1_zero/final --limit 200
"""

from __future__ import annotations

import argparse
import json
import time

from thinkrl.chat import prompt_messages, user_message
from thinkrl.cli import resolve
from thinkrl.evaluate import encode_problems, encode_prompt, load_engine
from thinkrl.prompts import follows_format
from thinkrl.tasks import get_task


def ask(engine, gen, problems, task, batch: int) -> dict:
    """generate's prompts for `problems`, decoded and scored: accuracy, format rate, mean tokens."""
    prompts = [encode_prompt(engine.tokenizer, prompt_messages(gen, [user_message(gen, p.question, gen.think_budget)]))
               for p in problems]
    outs = []
    for start in range(0, len(prompts), batch):
        part = engine.generate(prompts[start : start + batch], gen.sampling, n=1,
                               seeds=[gen.seed] * len(prompts[start : start + batch]))
        outs += sorted(part, key=lambda c: c.prompt_index)
    n = len(problems)
    return {"prompts": prompts, "texts": [c.text for c in outs],
            "accuracy": sum(task.score(c.text, p) > 0 for c, p in zip(outs, problems)) / n,
            "format_rate": sum(follows_format(c.text, gen.template) for c in outs) / n,
            "mean_tokens": sum(len(c.token_ids) for c in outs) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a trained model folder holding thinkrl_prompt.json")
    ap.add_argument("--limit", type=int, default=200, help="first N held-out problems")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--without-examples", action="store_true", help="also ask with shots = 0 (generate before the file)")
    ap.add_argument("--out", default="", help="JSON file for the figures and the first completions")
    args = ap.parse_args()

    gen = resolve("generate", None, [f"model.name={args.model}"], show=print)
    ev = resolve("eval", None, [f"model.name={args.model}", f"limit={args.limit}"])
    task = get_task(ev.task)
    problems = task.problems(ev.split)[: args.limit]
    engine = load_engine(gen.model, args.batch)
    evals = encode_problems(engine.tokenizer, task, problems, ev.task.template, ev.task.shots)
    t0 = time.perf_counter()
    result = ask(engine, gen, problems, task, args.batch)
    seconds = time.perf_counter() - t0
    same = sum(a == b for a, b in zip(result.pop("prompts"), evals))
    report = {"model": args.model, "task": ev.task.name, "problems": len(problems),
              "prompts_identical_to_eval": same, "sampling": {"temperature": gen.sampling.temperature,
                                                              "max_new_tokens": gen.sampling.max_new_tokens},
              "generate": {k: v for k, v in result.items() if k != "texts"}, "seconds": round(seconds, 1),
              "examples": [{"question": p.question, "reference": p.answer, "completion": t}
                           for p, t in zip(problems[:5], result["texts"])]}
    if args.without_examples:
        bare = resolve("generate", None, [f"model.name={args.model}", "shots=0"])
        without = ask(engine, bare, problems, task, args.batch)
        without.pop("prompts")
        report["generate_shots_0"] = {k: v for k, v in without.items() if k != "texts"}
        report["examples_shots_0"] = without["texts"][:5]
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
