"""A reward with spread on random tiny models (whose completions never earn the built-in ones)."""


def odd_first_char(completion: str, reference: str, info: dict) -> float:
    return float(bool(completion) and ord(completion[0]) % 2 == 1)
