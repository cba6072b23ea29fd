"""Language consistency (DeepSeek-R1): the share of the reasoning written in the target language.

R1 adds this reward during reasoning RL because R1-Zero's chains of thought mixed languages; it
is "the proportion of target language words in the CoT". Here a word is a run of letters; it
counts for the target language when every letter in it belongs to that language's script. CJK
scripts write no spaces, so each Han / kana / Hangul character counts as one word. Digits,
symbols and punctuation are neutral: "17 * 25 = 425" has no words and scores 1.0 (nothing in it
is in another language). The score is a share in [0, 1], the same number `thinkrl sample` uses
to keep readable samples.
"""

from __future__ import annotations

import re
import unicodedata

from thinkrl.errors import UserError

# target language -> the Unicode script name prefixes (unicodedata.name) its letters come from
SCRIPTS: dict[str, tuple[str, ...]] = {
    "en": ("LATIN",), "fr": ("LATIN",), "de": ("LATIN",), "es": ("LATIN",), "it": ("LATIN",), "pt": ("LATIN",),
    "ru": ("CYRILLIC",), "uk": ("CYRILLIC",),
    "zh": ("CJK",), "ja": ("CJK", "HIRAGANA", "KATAKANA"), "ko": ("HANGUL",),
    "ar": ("ARABIC",), "el": ("GREEK",), "he": ("HEBREW",), "hi": ("DEVANAGARI",),
}
_CJK_SPLIT = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL")  # scripts counted one character = one word
_LETTERS = re.compile(r"[^\W\d_]+")


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else ""


def words(text: str) -> list[str]:
    """Letter runs of `text`, with CJK characters split out one per word."""
    out: list[str] = []
    for run in _LETTERS.findall(text):
        piece = ""
        for ch in run:
            if _script(ch).startswith(_CJK_SPLIT):
                if piece:
                    out.append(piece)
                    piece = ""
                out.append(ch)
            else:
                piece += ch
        if piece:
            out.append(piece)
    return out


def language_share(text: str, lang: str = "en") -> float:
    """Share of the words of `text` written in `lang`'s script; 1.0 when there are no words."""
    if lang not in SCRIPTS:
        raise UserError(f"unknown language '{lang}' (key rewards.language_target): choose one of {', '.join(SCRIPTS)}")
    scripts = SCRIPTS[lang]
    ws = words(text)
    if not ws:
        return 1.0
    ok = sum(all(_script(ch).startswith(scripts) for ch in w) for w in ws)
    return ok / len(ws)


def reasoning_part(completion: str) -> str:
    """The chain of thought: inside <think>...</think> when present, else everything before
    </think> or <answer>, else the whole completion."""
    start = completion.find("<think>")
    end = completion.find("</think>")
    if start >= 0 and end > start:
        return completion[start + len("<think>") : end]
    for tag in ("</think>", "<answer>"):
        if tag in completion:
            return completion.split(tag, 1)[0]
    return completion
