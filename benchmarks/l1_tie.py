"""Does the budget in the prompt decide which length the model writes? (issue 5, L1 diagnostics)

For held-out arithmetic problems, scores the task's three written answers (short, worked, checked)
under each budget by their log-probability given the prompt, and prints per budget: how often each
form is the model's first choice, and the mean probability of each form renormalised over the three.
A model that has tied length to budget moves its choice with the budget; one that has not prefers
the same form whatever the budget. It shows the tie in probability before greedy decoding does,
and, unlike the SFT's mean loss, on the one token per answer where the budget matters.

    python benchmarks/l1_tie.py MODEL [--budgets 24,48,80] [--limit 50] [--digits 2,1]
"""

from __future__ import annotations

import argparse

import torch

from thinkrl.evaluate import encode_prompt
from thinkrl.models import load_model
from thinkrl.prompts import build_messages, write_response
from thinkrl.tasks import TaskConfig, get_task
from thinkrl.tasks.budget import parse_budgets, with_budget
from thinkrl.train.forward import completion_logprobs

FORMS = 3  # Arithmetic.solutions with solution_style = "every": short, worked, checked


def form_logprobs(model, prompt: list[int], forms: list[list[int]], pad_id: int) -> torch.Tensor:
    """[3] log p(form | prompt) of one problem's three written forms."""
    logp, _, mask = completion_logprobs(model, [prompt], [0] * len(forms), forms, temperature=1.0, pad_id=pad_id)
    return (logp * mask).sum(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--budgets", default="24,48,80")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--digits", default="2,1")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model, tokenizer = load_model(args.model)
    model.eval()
    task = get_task(TaskConfig(name="arithmetic", digits=args.digits, ops="*", num_eval=200, solution_style="every"))
    problems = task.problems("eval")[: args.limit]
    forms = [tokenizer(write_response(*w), add_special_tokens=False)["input_ids"]
             for p in problems for w in task.solutions(p)]
    print(f"{args.model}: {len(problems)} held-out problems; forms scored by log p(response | prompt)")
    print("budget | first choice short / worked / checked | mean p short / worked / checked | tokens of the choice")
    for b in parse_budgets(args.budgets):
        prompts = [encode_prompt(tokenizer, build_messages(with_budget(p, b), task, "r1_zero")) for p in problems]
        lp = torch.stack([form_logprobs(model, prompt, forms[FORMS * i : FORMS * (i + 1)], tokenizer.pad_token_id or 0)
                          for i, prompt in enumerate(prompts)])
        best = lp.argmax(-1)
        wins = torch.bincount(best, minlength=FORMS).tolist()
        probs = torch.softmax(lp, -1).sum(0)
        lengths = [len(forms[FORMS * i + int(j)]) for i, j in enumerate(best)]
        n = len(problems)
        print(f"{b:6d} | {wins[0]:3d} / {wins[1]:3d} / {wins[2]:3d} | "
              f"{probs[0] / n:.2f} / {probs[1] / n:.2f} / {probs[2] / n:.2f} | {sum(lengths) / n:.1f}")


if __name__ == "__main__":
    main()
