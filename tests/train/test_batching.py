"""Mini-batches of a rollout batch: every row once per epoch, an order that is a function of
(seed, step), and the normalizer each aggregation divides by. (Length bucketing and the padding
it saves: tests/test_fast_train.py.)"""

from thinkrl import config as C
from thinkrl.engine import Completion
from thinkrl.tasks import Problem
from thinkrl.train.batching import micro_inputs, minibatches, trained_flags
from thinkrl.train.rollout import Rollout


def _rollouts(lengths, finish="eos"):
    prompts = [[1, 2], [3]]
    return [Rollout(Problem("p", "q", "a"), prompts[i // 2], Completion(
        prompt_index=i // 2, sample_index=i % 2, token_ids=[5] * n, logprobs=[0.0] * n, mask=[1] * n, text="x",
        finish_reason="length" if i == 3 else finish), {}, 0.0) for i, n in enumerate(lengths)]


def test_every_row_once_per_epoch_in_an_order_fixed_by_seed_and_step():
    cfg = C.RLConfig(seed=1, algo=C.AlgoConfig(epochs=2, mini_batches=2))
    rollouts = _rollouts([1, 2, 3, 4])
    keep = trained_flags(cfg, rollouts)
    batches = [rows for rows, _ in minibatches(cfg, 5, rollouts, keep)]
    assert len(batches) == 4 and sorted(batches[0] + batches[1]) == sorted(batches[2] + batches[3]) == [0, 1, 2, 3]
    assert batches == [rows for rows, _ in minibatches(cfg, 5, rollouts, keep)]  # a resumed run sees the same
    assert [sorted(r) for r in batches] == [rows for rows, _ in minibatches(cfg, 5, rollouts, keep, in_row_order=True)]


def test_normalizers_count_trained_tokens_or_rows():
    rollouts = _rollouts([1, 2, 3, 4])
    cfg = C.RLConfig(algo=C.AlgoConfig(epochs=1, mini_batches=1, mask_truncated=True))
    keep = trained_flags(cfg, rollouts)
    assert keep == [True, True, True, False]  # the row cut off at the token budget carries no loss
    assert [n for _, n in minibatches(cfg, 0, rollouts, keep)] == [6.0]
    cfg = C.RLConfig(algo=C.AlgoConfig(epochs=1, mini_batches=1, aggregation="seq_mean_token_mean"))
    assert [n for _, n in minibatches(cfg, 0, rollouts, trained_flags(cfg, rollouts))] == [4.0]


def test_a_groups_rows_share_one_encoded_prompt():
    rollouts = _rollouts([1, 2, 3, 4])
    prompts, prompt_of_row, completions = micro_inputs(rollouts, [3, 0, 1])
    assert prompts == [[3], [1, 2]] and prompt_of_row == [0, 1, 1] and [len(c) for c in completions] == [4, 1, 2]
