"""Held-out pairwise accuracy of a trained reward model split by pair kind (RESULTS.md, issue 4).

Paths are those of the recorded run; both formatted = only correctness differs."""
from thinkrl.train.rm import load_pairs, split_pairs
from thinkrl.rewards.model import load_reward_model, score_conversations
from thinkrl.prompts import split_response

pairs = load_pairs("/work/bench/pref/pairs2.jsonl")
_, held = split_pairs(pairs, 0.15, 0)
model, tok, pad = load_reward_model("/work/bench/rm/final")

ch = score_conversations(model, tok, pad, [p.chosen for p in held])
rj = score_conversations(model, tok, pad, [p.rejected for p in held])
kinds = {}
for p, c, r in zip(held, ch, rj):
    rej_text = p.rejected[-1]["content"]
    if p.chosen[-2]["content"].startswith("What is"):
        kind = "arith: both formatted (correctness only)" if split_response(rej_text)[1] is not None else "arith: rejected unformatted"
    else:
        kind = "general: finished vs cut off"
    n, k = kinds.get(kind, (0, 0))
    kinds[kind] = (n + 1, k + int(float(c) > float(r)))
for kind, (n, k) in kinds.items():
    print(f"{kind}: {k}/{n} = {k / n:.3f}")
