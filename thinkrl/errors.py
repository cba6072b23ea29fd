"""The one exception type for mistakes in the user's input.

The CLI prints a UserError as a single line and exits with code 2; anything else is a bug in thinkrl
and keeps its traceback. Messages name what is wrong and where (file, line, key) and what to do.
"""


class UserError(Exception):
    """Bad input from the user: a file, a config key, a model name. Printed as one line, exit code 2."""
