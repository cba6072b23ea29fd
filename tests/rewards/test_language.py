import pytest

from thinkrl.errors import UserError
from thinkrl.rewards import RewardConfig, build
from thinkrl.rewards.language import language_share, reasoning_part, words


def test_words_split_cjk_one_per_character():
    assert words("abc 12 def") == ["abc", "def"]
    assert words("计算x") == ["计", "算", "x"]


def test_share_counts_words_in_target_script():
    assert language_share("First multiply 17 by 25", "en") == 1.0
    # 4 latin words + 2 han characters -> 4/6 in english, 2/6 in chinese
    text = "First multiply 计算 then add"
    assert language_share(text, "en") == pytest.approx(4 / 6)
    assert language_share(text, "zh") == pytest.approx(2 / 6)
    assert language_share("Сначала умножим", "ru") == 1.0
    assert language_share("Сначала multiply", "ru") == 0.5


def test_no_words_is_consistent():
    assert language_share("17 * 25 = 425", "en") == 1.0


def test_unknown_language_is_a_clear_error():
    with pytest.raises(UserError, match="rewards.language_target"):
        language_share("x", "xx")
    with pytest.raises(UserError, match="rewards.language_target"):
        build(RewardConfig(language=1.0, language_target="klingon"))


def test_reasoning_part_and_reward_use_the_thinking_only():
    text = "<think>multiply 计算</think><answer>425</answer>"
    assert reasoning_part(text) == "multiply 计算"
    assert reasoning_part("no tags at all") == "no tags at all"
    assert reasoning_part("thinking here </think> <answer>1</answer>") == "thinking here "
    fns = {name: (w, fn) for name, w, fn in build(RewardConfig(accuracy=0.0, language=0.5))}
    weight, fn = fns["language"]
    assert weight == 0.5
    assert fn(text, "425", {}) == pytest.approx(1 / 3)
