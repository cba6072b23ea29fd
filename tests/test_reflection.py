"""thinkrl.reflection: counting self-verification phrases (whole words, any case, longest first)."""

import pytest

from thinkrl.reflection import REFLECTION_PHRASES, count_reflections, reflection_metrics, reflection_stats


@pytest.mark.parametrize("text, count", [
    ("Wait, let me check: 3 * 4 = 12. Hmm.", 3),  # "let me check" is one phrase, not also a "check"
    ("WAIT. wait! Wait?", 3),  # any case
    ("awaiting the result, waits, waited, wait_for", 0),  # whole words only: letters, digits, _ around break it
    ("let  me\ncheck", 1),  # any white space between a phrase's words
    ("double-check and double check and recheck and re-check", 4),
    ("I made a mistake. Actually, no mistakes.", 2),  # "mistakes" is another word
    ("<think>wait</think>", 1),  # tags are not word characters
    ("", 0),
])
def test_count_reflections_default_phrases(text, count):
    assert count_reflections(text, REFLECTION_PHRASES) == count


def test_custom_phrases_and_an_empty_list():
    assert count_reflections("Aha, aha moment. AHA!", ["aha"]) == 3
    assert count_reflections("so 2+2 = 4 (2+2)", ["2+2"]) == 2  # regex characters are literal
    assert count_reflections("wait", []) == 0 and count_reflections("wait", ["  "]) == 0
    assert reflection_metrics(["wait"], [True], []) == {}


def test_reflection_stats_share_and_mean_count():
    texts = ["wait wait hmm", "no reflection here", "let me verify", "fine"]
    assert reflection_stats(texts, REFLECTION_PHRASES) == (0.5, 1.0)  # 2 of 4 reflect; 3 + 0 + 1 + 0 over 4
    assert reflection_stats([], REFLECTION_PHRASES) == (0.0, 0.0)


def test_reflection_metrics_split_by_correct_and_incorrect():
    texts = ["wait, 12", "12", "hmm wait actually 13", "14"]
    m = reflection_metrics(texts, [True, True, False, False], REFLECTION_PHRASES)
    assert m == {"reflection/rate": 0.5, "reflection/count_mean": 1.0,
                 "reflection/correct_rate": 0.5, "reflection/correct_count_mean": 0.5,
                 "reflection/incorrect_rate": 0.5, "reflection/incorrect_count_mean": 1.5}
    assert set(reflection_metrics(texts, None, ["wait"], prefix="r/")) == {"r/rate", "r/count_mean"}
