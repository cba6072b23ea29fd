"""Guess the number: a conversation, the example of an environment (thinkrl.envs).

The user thinks of a whole number from 1 to max_number; the model guesses, one number a turn;
the user answers "Higher." or "Lower." (a turn without a number gets "Reply with just a number.")
until the guess is right or max_guesses are spent. The game is a ChatEnv: a turn ends at the
model's end of turn (eos), the hints are inserted as the chat template writes a user message.

Reward: the environment gives 1 when the number is guessed, 0 when the guesses run out (the
`env` reward component reads it). The task's verifier agrees with it on every finished game: a
completion is correct when its last number is the secret (the hints hold no numbers, and the
game ends at the right guess), so `accuracy` and `thinkrl eval` (one turn there: one guess)
score the same thing. Use the raw prompt template (`task.template = "raw"`).
"""

from __future__ import annotations

import random
import re

from thinkrl.envs import Step
from thinkrl.envs.chat import ChatEnv
from thinkrl.tasks.base import Problem, Task, check_split

_NUMBER = re.compile(r"-?\d+")
SEED_OFFSET = {"train": 0, "eval": 1_000_003}  # separate streams (the secrets may repeat: they are hidden)


def last_number(text: str) -> int | None:
    found = _NUMBER.findall(text[-2000:])
    return int(found[-1]) if found else None


class GuessEnv(ChatEnv):
    """One game of guess the number, for one completion."""

    def __init__(self, secret: int, max_guesses: int):
        self.secret, self.max_guesses, self.guesses = secret, max_guesses, 0

    def reset(self, problem: Problem) -> str:
        self.guesses = 0
        return problem.question

    def step(self, model_turn: str) -> Step:
        self.guesses += 1
        guess = last_number(model_turn)
        if guess == self.secret:
            return Step(done=True, reward=1.0)
        if self.guesses >= self.max_guesses:
            return Step(done=True, reward=0.0)
        if guess is None:
            return Step("Reply with just a number.")
        return Step("Higher." if guess < self.secret else "Lower.")


class Guess(Task):
    name = "guess"

    def __init__(self, seed: int = 0, num_train: int = 10_000, num_eval: int = 500, max_number: int = 100,
                 max_guesses: int = 7):
        self.seed, self.max_number, self.max_guesses = seed, max_number, max_guesses
        self.sizes = {"train": num_train, "eval": num_eval}

    def problems(self, split: str) -> list[Problem]:
        rng = random.Random(self.seed * 7919 + SEED_OFFSET[check_split(split)])
        question = (f"Let's play a game. I am thinking of a whole number from 1 to {self.max_number}. Guess it: reply "
                    f"with just your guess, and I will tell you whether my number is higher or lower. You have "
                    f"{self.max_guesses} guesses.")
        return [Problem(f"guess-{split}-{i}", question, str(rng.randint(1, self.max_number)))
                for i in range(self.sizes[split])]

    def extract(self, completion: str) -> str | None:
        n = last_number(completion)
        return None if n is None else str(n)

    def score(self, completion: str, problem: Problem) -> float:
        return float(self.extract(completion) == problem.answer.strip())

    def environment(self, problem: Problem) -> GuessEnv:
        return GuessEnv(int(problem.answer), self.max_guesses)
