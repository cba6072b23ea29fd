"""The search tool's retriever: exact hits, the cached index, bad corpora, empty queries."""

import json

import pytest

from thinkrl.errors import UserError
from thinkrl.tools import search
from thinkrl.tools.search import NO_RESULTS, Retriever, format_results, make_search_tool, top_k, truncate

CORPUS = [
    {"id": "org-1", "title": "Vornak Institute", "text": "Vornak Institute was founded in 1921. Its headquarters are in Dorvale."},
    {"id": "city-1", "title": "Dorvale", "text": "Dorvale is a city in the country of Quenland."},
    {"id": 7, "title": "Talomir Vesk", "text": "Talomir Vesk was born in Dorvale in 1952. Talomir Vesk works for Vornak Institute."},
    {"id": "country-1", "title": "Quenland", "text": "Quenland is a country. Its capital is the city of Dorvale."},
]


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path):
    return write(tmp_path / "corpus.jsonl", CORPUS)


def test_exact_hits(corpus, tmp_path):
    r = Retriever(corpus, cache_root=tmp_path / "cache")
    assert r.search("In which city was Talomir Vesk born?", k=1)[0].id == "7"  # integer ids become strings
    assert r.search("When was Vornak Institute founded?", k=1)[0].title == "Vornak Institute"
    assert r.search("capital of Quenland", k=1)[0].id == "country-1"
    # only passages sharing a word come back, best first
    assert [p.id for p in r.search("Talomir", k=5)] == ["7"]
    assert len(r.search("Dorvale", k=2)) == 2


def test_search_tool_text(corpus, tmp_path):
    tool = make_search_tool(corpus, k=2, max_chars=40, cache_root=tmp_path / "cache")
    lines = tool("Talomir Vesk").split("\n")
    assert lines[0].startswith("Talomir Vesk: Talomir Vesk was born") and lines[0].endswith("...")
    assert all(len(line) <= 40 for line in lines)
    full = make_search_tool(corpus, k=1, max_chars=1000, cache_root=tmp_path / "cache")("Quenland capital")
    assert full == "Quenland: Quenland is a country. Its capital is the city of Dorvale."


def test_cache_reused_and_keyed_by_content(corpus, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = Retriever(corpus, cache_root=cache)
    assert first.built and len(list(cache.iterdir())) == 1
    monkeypatch.setattr(search, "build_index", lambda *a: pytest.fail("rebuilt a cached index"))
    second = Retriever(corpus, cache_root=cache)
    assert not second.built
    assert second.search("Talomir Vesk", k=2) == first.search("Talomir Vesk", k=2)
    monkeypatch.undo()
    write(corpus, CORPUS + [{"id": "x", "title": "Brellow", "text": "Brellow is a river."}])
    third = Retriever(corpus, cache_root=cache)  # edited corpus: new key, new index
    assert third.built and len(list(cache.iterdir())) == 2
    assert third.search("Brellow", k=1)[0].id == "x"


@pytest.mark.parametrize(
    "rows, message",
    [
        ([CORPUS[0], {"id": "b", "title": "B"}], "corpus.jsonl:2: missing field 'text'"),
        ([{"title": "A", "text": "a"}], "corpus.jsonl:1: missing field 'id'"),
        (["[1, 2]"], "corpus.jsonl:1: expected a JSON object"),
        (["{not json"], "corpus.jsonl:1: not valid JSON"),
        ([CORPUS[0], CORPUS[0]], "corpus.jsonl:2: id 'org-1' repeats line 1"),
        ([{"id": "a", "title": "A", "text": 3}], "corpus.jsonl:1: field 'text' must be a string, got number"),
        ([{"id": "a", "title": "A", "text": "  "}], "corpus.jsonl:1: field 'text' is empty"),
        ([{"id": None, "title": "A", "text": "a"}], "corpus.jsonl:1: field 'id' must be a non-empty string or an integer"),
        (["", "  "], "no passages"),
    ],
)
def test_bad_corpus(tmp_path, rows, message):
    path = write(tmp_path / "corpus.jsonl", rows)
    with pytest.raises(UserError, match=message.replace("[", r"\[")) as e:
        Retriever(path, cache_root=tmp_path / "cache")
    assert "\n" not in str(e.value)


def test_missing_corpus(tmp_path):
    with pytest.raises(UserError, match="no such corpus file"):
        Retriever(tmp_path / "nope.jsonl", cache_root=tmp_path / "cache")


def test_empty_and_stopword_queries(corpus, tmp_path):
    r = Retriever(corpus, cache_root=tmp_path / "cache")
    for query in ("", "   ", "what is the", "?!", "zzzunknown"):
        assert r.search(query) == []
        assert r.search_tool(query) == NO_RESULTS


def test_top_k_ties_in_file_order():
    import numpy as np

    scores = np.array([0.0, 2.0, 1.0, 2.0, 1.0, 0.0])
    assert top_k(scores, 3) == [1, 3, 2]
    assert top_k(scores, 10) == [1, 3, 2, 4]  # zero scores never returned


def test_truncate_and_format():
    assert truncate("short", 10) == "short"
    assert truncate("alpha beta gamma delta", 15) == "alpha beta..."
    assert len(truncate("x" * 50, 10)) == 10
    assert format_results([], 10) == NO_RESULTS
