"""A reward with spread on random tiny models (whose completions never earn the built-in ones)."""


def odd_first_char(completion: str, reference: str, info: dict) -> float:
    return float(bool(completion) and ord(completion[0]) % 2 == 1)


def boom(completion: str, reference: str, info: dict) -> float:
    """A reward with a bug: it raises on every completion."""
    raise ValueError("boom: this reward has a bug")


def hang(completion: str, reference: str, info: dict) -> float:
    """A reward that never returns (a stuck network call, a deadlock)."""
    import time

    time.sleep(10**6)
    return 1.0


def not_a_number(completion: str, reference: str, info: dict) -> float:
    return float("nan")
