"""Search: BM25 retrieval over a local corpus, the `search` tool's backend. No network, ever.

Corpus: a JSONL file, one passage a line: {"id": "...", "title": "...", "text": "..."} (id a
string or a number, kept as a string and unique in the file; title and text strings, text not
empty). Other keys are ignored. The file is read with thinkrl.data.jsonl.read_jsonl, so a bad line
fails at startup with one line naming PATH:LINE and what is wrong.

Index: bm25s (Lucene's BM25 scoring) over each passage's title and text, lowercased, split into
word characters, English stopwords dropped, no stemming (so the invented names of the lookup task
and a user's product codes match as written). It is built once and saved under
`<cache>/search/<key>/`, where key hashes the corpus file's bytes, INDEX_VERSION and the bm25s
version: an edited corpus gets a new index, an unchanged one is loaded (milliseconds), not rebuilt.

What the model sees (`search_tool`): the top-k passages as "title: text", each cut to
`max_chars` characters, one per line; "No results." when no passage shares a word with the
query. Ties in score go to the passage earlier in the file, so results are deterministic.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thinkrl.data.jsonl import read_jsonl
from thinkrl.data.packaged import data_file
from thinkrl.errors import UserError

# bump when tokenisation or BM25 parameters change: old cached indexes then stop matching
INDEX_VERSION = "bm25s-lucene-k1.5-b0.75-words-v1"
NO_RESULTS = "No results."
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Passage:
    """One corpus line."""

    id: str
    title: str
    text: str


def tokenize(text: str, stopwords: frozenset[str]) -> list[str]:
    """Lowercased word tokens of `text` without `stopwords`: "Where is the Vornak Institute?" ->
    ["vornak", "institute"] (with English stopwords)."""
    return [w for w in _WORD.findall(text.lower()) if w not in stopwords]


def english_stopwords() -> frozenset[str]:
    """bm25s's English stopword list (question words like "which" and "was" carry no topic)."""
    from bm25s.stopwords import STOPWORDS_EN  # noqa: PLC0415 - bm25s loads on use

    return frozenset(STOPWORDS_EN)


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _passage(where: str, row: object) -> Passage:
    """One parsed corpus line as a Passage, or a UserError saying what is wrong with it."""
    if not isinstance(row, dict):
        raise UserError(f'{where}: expected a JSON object like {{"id": ..., "title": ..., "text": ...}}, got {_type_name(row)}')
    for key in ("id", "title", "text"):
        if key not in row:
            keys = ", ".join(repr(k) for k in list(row)[:8]) or "none"
            raise UserError(f"{where}: missing field '{key}' (a corpus line needs id, title and text; this line has {keys})")
    pid = row["id"]
    if isinstance(pid, bool) or not isinstance(pid, (str, int)) or not str(pid).strip():
        raise UserError(f"{where}: field 'id' must be a non-empty string or an integer, got {_type_name(pid)}")
    for key in ("title", "text"):
        if not isinstance(row[key], str):
            raise UserError(f"{where}: field '{key}' must be a string, got {_type_name(row[key])}")
    if not row["text"].strip():
        raise UserError(f"{where}: field 'text' is empty")
    return Passage(id=str(pid).strip(), title=row["title"].strip(), text=row["text"].strip())


def load_corpus(path: Path) -> list[Passage]:
    """Every passage of a corpus file, in file order; a UserError on a missing file, a bad line, a
    repeated id or an empty file."""
    if not path.is_file():
        raise UserError(f"{path}: no such corpus file (a JSONL file of {{\"id\", \"title\", \"text\"}} lines): check the path")
    passages, seen = [], {}
    for lineno, row in read_jsonl(path):
        passage = _passage(f"{path}:{lineno}", row)
        if passage.id in seen:
            raise UserError(f"{path}:{lineno}: id {passage.id!r} repeats line {seen[passage.id]}; ids must be unique")
        seen[passage.id] = lineno
        passages.append(passage)
    if not passages:
        raise UserError(f"{path}: no passages (the file is empty or has only blank lines)")
    return passages


def index_key(path: Path) -> str:
    """The cache key of a corpus file's index: its bytes, INDEX_VERSION and the bm25s version (its
    save format may change between releases), hashed."""
    from bm25s.version import __version__ as bm25s_version  # noqa: PLC0415 - bm25s loads on use

    digest = hashlib.sha256(f"{INDEX_VERSION} bm25s-{bm25s_version}".encode())
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


def build_index(passages: list[Passage], stopwords: frozenset[str]):
    """A bm25s.BM25 index over each passage's title and text (document i = passages[i])."""
    import bm25s  # noqa: PLC0415 - load on use

    # a passage of stopwords only still needs a token, or bm25s drops the row and ids shift
    docs = [tokenize(f"{p.title} {p.text}", stopwords) or ["<empty>"] for p in passages]
    index = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    index.index(docs, show_progress=False)
    return index


def cached_index(path: Path, passages: list[Passage], cache_root: Path, stopwords: frozenset[str]):
    """The index of the corpus at `path`: loaded from `cache_root/<index_key>/` when there, else
    built and saved there (into a temporary folder renamed into place, so a crash or a concurrent
    builder never leaves half an index behind). Returns (index, built: bool)."""
    import bm25s  # noqa: PLC0415 - load on use

    folder = cache_root / index_key(path)
    if (folder / "params.index.json").is_file():
        return bm25s.BM25.load(str(folder), load_corpus=False), False
    index = build_index(passages, stopwords)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_root))
    try:
        index.save(str(tmp), show_progress=False)
        os.replace(tmp, folder)  # atomic; fails if another process got there first, which is fine
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return index, True


def truncate(text: str, max_chars: int) -> str:
    """`text` cut to at most max_chars characters, at a word boundary when one is near, with "..."."""
    if len(text) <= max_chars:
        return text
    cut = text[: max(max_chars - 3, 0)]
    space = cut.rfind(" ")
    if space >= len(cut) // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "..."


def format_results(passages: list[Passage], max_chars: int) -> str:
    """The text the model reads: one "title: text" line per passage, each cut to max_chars."""
    if not passages:
        return NO_RESULTS
    return "\n".join(truncate(f"{p.title}: {p.text}" if p.title else p.text, max_chars) for p in passages)


def top_k(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the k highest positive scores, best first; ties in file order. Partitions first,
    so a large corpus is not sorted whole for every query."""
    if k < len(scores):
        threshold = np.partition(scores, len(scores) - k)[len(scores) - k]
        candidates = np.flatnonzero(scores >= threshold)  # [>= k], ascending index
    else:
        candidates = np.arange(len(scores))
    order = candidates[np.argsort(-scores[candidates], kind="stable")][:k]
    return [int(i) for i in order if scores[i] > 0]


class Retriever:
    """BM25 search over one corpus file; the index is built once per corpus content and cached.

    `k` and `max_chars` are the defaults of `search_tool`, the function a tools registry maps the
    name "search" to (call text in, result text out)."""

    def __init__(self, path: str | Path, k: int = 3, max_chars: int = 300, cache_root: str | Path | None = None):
        if k < 1 or max_chars < 1:
            raise UserError(f"search: k ({k}) and max_chars ({max_chars}) must be 1 or more")
        self.path = data_file(Path(path).expanduser())  # recipes/data/... also from the installed package
        self.k, self.max_chars = k, max_chars
        self.stopwords = english_stopwords()
        self.passages = load_corpus(self.path)
        root = Path(cache_root) if cache_root is not None else default_cache_root()
        self.index, self.built = cached_index(self.path, self.passages, root, self.stopwords)

    def search(self, query: str, k: int | None = None) -> list[Passage]:
        """The top-k passages for `query`, best first; only passages sharing a word with it (an
        empty query, or one of stopwords only, finds nothing)."""
        k = self.k if k is None else k
        tokens = tokenize(query, self.stopwords)
        if not tokens or k < 1:
            return []
        scores = np.asarray(self.index.get_scores(tokens), dtype=np.float64)  # [num_passages]
        return [self.passages[i] for i in top_k(scores, k)]

    def search_tool(self, query: str) -> str:
        """What the model sees for a search call: the top-k passages as text (format_results)."""
        return format_results(self.search(query.strip()), self.max_chars)


def default_cache_root() -> Path:
    """`<thinkrl cache>/search`: where indexes are kept unless a caller says otherwise."""
    from thinkrl.models import cache_dir  # noqa: PLC0415 - models pulls in transformers

    return cache_dir() / "search"


def make_search_tool(corpus: str | Path, k: int = 3, max_chars: int = 300, cache_root: str | Path | None = None):
    """The `search` tool over a corpus file: a function from the call text (the query) to the
    result text (Retriever.search_tool). The index is built or loaded here, once, at startup."""
    return Retriever(corpus, k=k, max_chars=max_chars, cache_root=cache_root).search_tool
