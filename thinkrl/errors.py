"""The one exception type for mistakes in the user's input.

The CLI prints a UserError as a single line and exits with code 2; anything else is a bug in thinkrl
and keeps its traceback. Messages name what is wrong and where (file, line, key) and what to do.
"""


class UserError(Exception):
    """Bad input from the user: a file, a config key, a model name. Printed as one line, exit code 2."""


def warn(message: str) -> None:
    """One line on stderr for something a run survived but the user should know about (a reward
    that raised, a skipped update). Unlike `warnings.warn`, it repeats: callers decide what to say once
    (thinkrl.rewards.failures says a failing reward once and counts the rest in the metrics)."""
    import sys

    print(f"thinkrl: warning: {message}", file=sys.stderr, flush=True)
