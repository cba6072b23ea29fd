"""Environments: the engine's multi-turn loop steps them; observations are inserted as tokens the
model did not sample (mask 0, log-prob 0); the transcript trained on is exactly the sampled and the
inserted ids; a chat environment inserts what the chat template writes (the embedded SmolLM2)."""

import time

import pytest

from thinkrl import config as C
from thinkrl import envs as envs_mod
from thinkrl import rewards
from thinkrl.data.chat import encode_chat
from thinkrl.engine import Engine, SamplingParams
from thinkrl.envs import Environment, Step, run_steps
from thinkrl.envs.chat import user_turn_ids
from thinkrl.models import eos_token_ids
from thinkrl.tasks import TaskConfig, get_task
from thinkrl.tasks.base import Problem
from thinkrl.tasks.guess import Guess, GuessEnv
from thinkrl.tools import call_metrics
from thinkrl.train.batching import micro_inputs, sampled_mask
from thinkrl.train.rollout import Rollout, collect, rollout_metrics, score

PROMPTS = ["hello there", "a", "what is 2+2? answer:"]


class Script(Environment):
    """Answers its turns with `replies` in order; the last one ends the conversation with reward 1."""

    def __init__(self, replies=("ok", "more"), reward=0.5):
        self.replies, self.reward, self.turns = list(replies), reward, []

    def reset(self, problem):
        return problem.question

    def step(self, model_turn):
        self.turns.append(model_turn)
        if len(self.turns) > len(self.replies):
            return Step(done=True, reward=1.0)
        return Step(self.replies[len(self.turns) - 1], reward=self.reward)


def end_turns_at(monkeypatch, *lengths):
    """A model turn ends when the completion reaches one of `lengths` tokens (a random model writes
    no eos or tags worth waiting for); the rest of the engine's rule (max_steps) is kept."""
    def ended(self, res, start, env, finished):
        return len(res.token_ids) in lengths and not finished and res.turns <= env.max_steps

    monkeypatch.setattr(Engine, "_turn_ended", ended)


def generate(model, tok, envs=None, max_new_tokens=30):
    params = SamplingParams(temperature=1.0, max_new_tokens=max_new_tokens, ignore_eos=True)
    engine = Engine(model, tok, eos_token_ids(model, tok), runner="eager")
    return engine.generate([tok.encode(p) for p in PROMPTS], params, n=2, seeds=[1, 2, 3], envs=envs)


def segments(c):
    """The completion cut where its mask changes: [(mask, ids), ...]."""
    out = []
    for t, m in zip(c.token_ids, c.mask):
        if out and out[-1][0] == m:
            out[-1][1].append(t)
        else:
            out.append((m, [t]))
    return out


def test_turns_observations_masks_and_rewards(tiny_llama, monkeypatch):
    model, tok = tiny_llama
    plain = generate(model, tok)
    end_turns_at(monkeypatch, 3, 10)
    envs = [Script() if i % 2 == 0 else None for i in range(6)]  # odd rows: single-turn
    outs = generate(model, tok, envs)
    ok, more = (tok.encode(s, add_special_tokens=False) for s in ("ok", "more"))
    for c, env, p in zip(outs, envs, plain):
        if env is None:
            assert c.token_ids == p.token_ids and c.mask == [1] * 30 and c.turns == 1 and c.env_reward is None
            continue
        segs = segments(c)
        assert [m for m, _ in segs] == [1, 0, 1, 0, 1] and segs[1][1] == ok and segs[3][1] == more
        assert len(segs[0][1]) == 3 and len(segs[0][1]) + len(ok) + len(segs[2][1]) == 10
        assert c.token_ids[:3] == p.token_ids[:3]  # the same stream until the first observation
        assert all(lp == 0.0 for lp, m in zip(c.logprobs, c.mask) if m == 0)
        assert env.turns == [tok.decode(ids, skip_special_tokens=True) for ids in (segs[0][1], segs[2][1])]  # each turn's own text
        assert c.turns == 3 and c.env_reward == 1.0 and c.finish_reason == "length"
    m = call_metrics(outs)
    assert m["tools/turns"] == (3 * 3 + 3) / 6 and m["tools/calls_per_completion"] == 0.0


def test_done_ends_the_row_and_max_steps_caps_the_turns(tiny_llama, monkeypatch):
    model, tok = tiny_llama
    end_turns_at(monkeypatch, 3, 6, 9, 12)
    capped = Script(replies=["a", "b", "c", "d"])
    capped.max_steps = 1
    envs = [Script(replies=["x"]), capped] + [Script(replies=[]) for _ in range(4)]
    outs = generate(model, tok, envs)
    assert len(outs[0].token_ids) == 3 + 1 + 2 and outs[0].finish_reason == "stop" and outs[0].env_reward == 1.5
    assert outs[1].turns == 2 and len(envs[1].turns) == 1 and len(outs[1].token_ids) == 30
    assert all(len(c.token_ids) == 3 and c.turns == 1 and c.env_reward == 1.0 for c in outs[2:])


def test_the_training_rows_are_the_sampled_and_inserted_ids(tiny_llama, monkeypatch):
    """What the update trains on: the completion's own ids (never a re-tokenised transcript), the
    loss only on the sampled ones; the env's reward reaches the `env` reward component."""
    model, tok = tiny_llama
    end_turns_at(monkeypatch, 4)
    outs = generate(model, tok, [Script(replies=["seven"]) for _ in range(6)], max_new_tokens=16)
    problems = [Problem(f"p{i}", q, "7") for i, q in enumerate(PROMPTS)]
    rows = [Rollout(problems[c.prompt_index], tok.encode(PROMPTS[c.prompt_index]), c, {}, 0.0) for c in outs]
    _, _, completions = micro_inputs(rows, list(range(6)))
    assert completions == [c.token_ids for c in outs]
    assert sampled_mask(rows, list(range(6)), 16, "cpu").tolist() == [[float(m) for m in c.mask] for c in outs]
    inserted = tok.encode("seven", add_special_tokens=False)
    assert all(c.token_ids[4 : 4 + len(inserted)] == inserted and c.mask[4 : 4 + len(inserted)] == [0] * len(inserted)
               for c in outs)
    scored = score(None, [problems[c.prompt_index] for c in outs], outs, rewards.build(rewards.RewardConfig(
        accuracy=0.0, env=2.0)), 16)
    assert [s for s in scored] == [({"env": 0.5}, 1.0)] * 6  # one step gave 0.5 before the budget ran out


def test_an_rl_step_converses_with_the_tasks_environments(tiny_llama, monkeypatch):
    """collect(): each row gets its own game; hints go in as the chat template's user turns; the
    games' rewards reach the `env` component and the metrics count the turns."""
    model, tok = tiny_llama
    end_turns_at(monkeypatch, 2, 60)
    task = Guess(num_train=4, num_eval=1, max_guesses=2)
    cfg = C.RLConfig(sampling=C.SamplingParams(temperature=1.0, max_new_tokens=80, ignore_eos=True), group_size=2,
                     prompts_per_step=2)
    engine = Engine(model, tok, eos_token_ids(model, tok), runner="eager")
    rows, _, _, drawn = collect(cfg, 0, 0, engine, task, task.problems("train"),
                                lambda p: encode_chat(tok, [{"role": "user", "content": p.question}], open_turn=True),
                                rewards.build(rewards.RewardConfig(accuracy=1.0, env=1.0)))
    for r in rows:
        (_, first), (_, hint), _ = segments(r.completion)
        assert len(first) == 2 and hint in [user_turn_ids(tok, h) for h in ("Higher.", "Lower.", "Reply with just a number.")]
        assert r.completion.turns == 2 and r.completion.finish_reason == "stop" and len(r.completion.token_ids) == 60
        assert r.rewards["env"] == r.completion.env_reward == 0.0  # two wrong guesses: the game is lost
    assert rollout_metrics(drawn, rows, 2)["tools/turns"] == 2.0


def test_steps_run_in_parallel_under_a_deadline_and_failures_end_the_conversation():
    class Slow(Script):
        timeout_s = 0.5

        def step(self, model_turn):
            time.sleep(float(model_turn))
            return Step("slept")

    class Broken(Script):
        def step(self, model_turn):
            return 1 / 0 if model_turn == "raise" else "not a step"

    t0 = time.perf_counter()
    steps = run_steps([Slow(), Slow(), Slow(), Slow(), Broken(), Broken()], ["0.3", "0.3", "0.3", "5", "raise", "x"])
    assert time.perf_counter() - t0 < 1.5  # side by side, and the hanging one is not waited for
    assert [s.observation for s in steps[:3]] == ["slept"] * 3
    assert all(s.done and s.observation == "" for s in steps[3:])


def test_start_asks_the_first_observation_and_builds_one_env_per_row():
    task = Guess(num_train=3, num_eval=1, max_number=20, max_guesses=2)
    problems = task.problems("train")
    asked, envs = envs_mod.start(task, problems, 2)
    assert len(envs) == 6 and len({id(e) for e in envs}) == 6 and [a.question for a in asked] == [p.question for p in problems]
    assert envs_mod.start(get_task(TaskConfig(name="arithmetic", num_train=2, num_eval=1)), problems, 2)[1] is None
    assert get_task(TaskConfig(name="guess", max_guesses=3)).environment(problems[0]).max_guesses == 3


def test_the_guess_game_and_its_verifier_agree():
    env = GuessEnv(secret=42, max_guesses=4)
    assert env.reset(Problem("g", "Guess.", "42")) == "Guess."
    assert env.step("I guess 50") == Step("Lower.")
    assert env.step("maybe") == Step("Reply with just a number.")
    assert env.step("30") == Step("Higher.")
    assert env.step("42") == Step(done=True, reward=1.0)
    lost = GuessEnv(secret=7, max_guesses=1)
    assert lost.step("3") == Step(done=True, reward=0.0)
    task, p = Guess(), Problem("g", "Guess.", "42")
    assert task.score("50\nuser\nLower.\nassistant\n42", p) == 1.0 and task.score("42 or 43", p) == 0.0


@pytest.mark.embedded
def test_a_chat_conversation_is_the_templates_transcript_token_for_token(embedded):
    """SmolLM2 plays guess-the-number for up to 3 turns. Its completions are exactly the sampled
    segments and the inserted ones; each inserted segment is the chat template's ids for a user
    message after an assistant turn; and prompt + completion, decoded, is the template's rendering
    of the conversation. (Re-tokenising that rendering could split the model's text into other
    ids: the ids trained on are the sampled ones.)"""
    class Recording(GuessEnv):
        def step(self, model_turn):
            self.said = getattr(self, "said", []) + [super().step(model_turn)]
            return self.said[-1]

    model, tok = embedded
    task = Guess(num_train=2, num_eval=1, max_guesses=3)
    asked = task.problems("train")
    envs = [Recording(int(p.answer), 3) for p in asked for _ in range(2)]
    assert [env.reset(asked[i // 2]) for i, env in enumerate(envs)] == [p.question for p in asked for _ in range(2)]
    prompts = [encode_chat(tok, [{"role": "user", "content": p.question}], open_turn=True) for p in asked]
    engine = Engine(model, tok, eos_token_ids(model, tok), runner="eager")
    outs = engine.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=120), n=2, seeds=[1, 2], envs=envs)
    assert max(c.turns for c in outs) >= 2 and any(c.finish_reason == "eos" for c in outs)
    end = tok.eos_token
    for c, env in zip(outs, envs):
        segs = segments(c)
        assert sum((ids for _, ids in segs), []) == c.token_ids and [m for m, _ in segs][::2] == [1] * ((len(segs) + 1) // 2)
        observed = [s.observation for s in getattr(env, "said", []) if not s.done][: c.turns - 1]  # those inserted
        assert [ids for m, ids in segs if m == 0] == [user_turn_ids(tok, o) for o in observed]
        conversation = [{"role": "user", "content": asked[c.prompt_index].question}]
        for k, (_, ids) in enumerate(segs[::2]):
            text = tok.decode(ids)
            conversation.append({"role": "assistant", "content": text[: -len(end)] if text.endswith(end) else text})
            if k < len(observed):
                conversation.append({"role": "user", "content": observed[k]})
                # the inserted ids: what the template writes from the end of the assistant turn to the next one's opening
                upto = tok.apply_chat_template(conversation[:-1], tokenize=False)
                full = tok.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
                between = full[upto.rindex(end) + len(end) :]
                assert segs[2 * k + 1][1] == tok(between, add_special_tokens=False)["input_ids"]
        rendered = tok.apply_chat_template(conversation, tokenize=False)
        cut = rendered.rindex(end) + (len(end) if c.token_ids[-1] == tok.eos_token_id else 0)  # a turn cut short has no end
        assert tok.decode(prompts[c.prompt_index] + c.token_ids) == rendered[:cut]
        if c.finish_reason == "eos":
            assert c.env_reward == float(task.score(c.text, asked[c.prompt_index]))
