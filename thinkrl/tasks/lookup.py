"""lookup: questions about a seeded fictional encyclopedia, answerable only by searching its corpus.

The world is invented from syllables ("Talomir Vesk", "Dorvale", "Vornak Institute"), so no
real-world knowledge helps and a model without the search tool stays near 0. It holds people
(birth city, birth year, employer), organisations (headquarters city, founding year, members),
cities (country) and countries (capital). Each entity is one short passage, its "card":

    Talomir Vesk: Talomir Vesk was born in Dorvale in 1952. Talomir Vesk works for Vornak Institute.

Questions name their key entity verbatim, so a search with the question's words finds its card:
single-hop ("In which city was Talomir Vesk born?") and two-hop through a bridge entity ("In which
city is the headquarters of the organisation that Talomir Vesk works for?": the person's card
gives the organisation, its card the city). Answers are short (a name, a city, a year, a number)
and judged by normalised exact match (case, punctuation, articles, spacing: `normalise_answer`),
the one verifier of eval and reward.

Splits never leak: a seeded EVAL_SHARE of each kind of entity is held out, and a question belongs
to the split of the entity it names; so every eval question is about an entity no train question
names (its card, and the bridge card of a two-hop question, may be shared: the world is one).
The corpus is the whole world, written once to `corpus_path()` (a JSONL file under the cache,
named by seed, size, passage style and GENERATOR_VERSION) for the search tool: `[tools]
search.corpus = "task"`.

Two passage styles (`task.lookup_passages`): "cards", one passage per entity as above (the model
must pick the field the question asks for out of the card), and "facts", one passage per fact,
worded with the question's own words so that a search with the question puts that fact first
("Talomir Vesk was born in the city of Dorvale."; measured with k = 1 over a 1,000-person world:
the right fact first for every question but 5% of the employer ones, whose long organisation
names lose on BM25's length normalisation). With facts, reading is easy and what is left to
learn is the search itself: a two-hop question needs a second search, for the bridge entity's
own single-hop question ("In which city is the headquarters of Vornak Institute?").
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from thinkrl.tasks.base import Problem, Task, check_split

NUM_EXAMPLES = 4  # example turns for task.shots
GENERATOR_VERSION = "v1"  # bump when the world or its wording changes: a new corpus file name
EVAL_SHARE = 0.2  # of each kind of entity, held out for eval questions
HOPS = (1, 2)
PASSAGE_STYLES = ("cards", "facts")

ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th", "sh", "dr", "tr", "br", "kr", "qu", "h")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
CODAS = ("", "", "", "n", "r", "l", "s", "k", "th", "m", "x")
ORG_KINDS = ("Institute", "Guild", "Company", "Society", "Foundation", "Works", "Bank", "Trading House", "Observatory", "Press")
COUNTRY_ENDS = ("land", "ia", "mark", "or", "essa")
CITY_ENDS = ("", "", "vale", "holm", "ford", "burg", "mouth", "wick")


@dataclass(frozen=True)
class World:
    """The generated encyclopedia: one dict per entity, each with a "name" and its attributes
    (people: city, year, org; orgs: city, year, members; cities: country; countries: capital),
    relations held as indices into the other lists."""

    people: list[dict]
    orgs: list[dict]
    cities: list[dict]
    countries: list[dict]


def _word(rng: random.Random, syllables: tuple[int, int]) -> str:
    """An invented word of syllables, capitalised: 'Talomir'."""
    n = rng.randint(*syllables)
    return ("".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(n)) + rng.choice(CODAS)).capitalize()


def _fresh(rng: random.Random, used: set[str], make) -> str:
    """A name from `make(rng)` whose words (lowercased) no earlier name used; adds them to `used`,
    so one word never names two entities and a search for a name is not pulled elsewhere."""
    while True:
        name = make(rng)
        words = {w.lower() for w in name.split()} - {k.lower() for k in ORG_KINDS}
        if len(name) >= 4 and not words & used:
            used |= words
            return name


def make_world(seed: int, people: int) -> World:
    """A seeded world of `people` people, people // 10 organisations and cities (at least 4 each),
    and cities // 6 countries (at least 2). The same (seed, people) always gives the same world."""
    rng = random.Random(f"{seed}-lookup-world")
    used: set[str] = set()
    n_orgs, n_cities = max(4, people // 10), max(4, people // 10)
    n_countries = max(2, n_cities // 6)
    countries = [{"name": _fresh(rng, used, lambda r: _word(r, (1, 2)) + r.choice(COUNTRY_ENDS))} for _ in range(n_countries)]
    # every country gets a city before any gets a second, so each has a capital
    cities = [{"name": _fresh(rng, used, lambda r: _word(r, (1, 2)) + r.choice(CITY_ENDS)),
               "country": i if i < n_countries else rng.randrange(n_countries)} for i in range(n_cities)]  # fmt: skip
    for i, country in enumerate(countries):
        country["capital"] = i  # city i is in country i (above)
    orgs = [{"name": f"{_fresh(rng, used, lambda r: _word(r, (2, 2)))} {rng.choice(ORG_KINDS)}",
             "city": rng.randrange(n_cities), "year": rng.randint(1780, 1990),
             "members": rng.randint(12, 9800)} for _ in range(n_orgs)]  # fmt: skip
    # given and family names repeat across people (as real ones do); full names do not
    given = [_fresh(rng, used, lambda r: _word(r, (2, 2))) for _ in range(max(20, people // 5))]
    family = [_fresh(rng, used, lambda r: _word(r, (1, 2))) for _ in range(max(20, people // 3))]
    names: set[str] = set()
    persons = []
    while len(persons) < people:
        name = f"{rng.choice(given)} {rng.choice(family)}"
        if name not in names:
            names.add(name)
            persons.append({"name": name, "city": rng.randrange(n_cities), "year": rng.randint(1900, 2005),
                            "org": rng.randrange(n_orgs)})  # fmt: skip
    return World(people=persons, orgs=orgs, cities=cities, countries=countries)


def passages(world: World) -> list[dict]:
    """The corpus: one {"id", "title", "text"} card per entity, people first. Each card repeats
    its entity's name, so BM25 ranks it above cards that only mention the name."""
    w, out = world, []
    city, org, country = (lambda i: w.cities[i]["name"]), (lambda i: w.orgs[i]["name"]), (lambda i: w.countries[i]["name"])
    for i, p in enumerate(w.people):
        text = f"{p['name']} was born in {city(p['city'])} in {p['year']}. {p['name']} works for {org(p['org'])}."
        out.append({"id": f"person-{i}", "title": p["name"], "text": text})
    for i, o in enumerate(w.orgs):
        text = (f"{o['name']} is an organisation founded in {o['year']}. Its headquarters are in the city of "
                f"{city(o['city'])}. {o['name']} has {o['members']} members.")  # fmt: skip
        out.append({"id": f"org-{i}", "title": o["name"], "text": text})
    for i, c in enumerate(w.cities):
        text = f"{c['name']} is a city in the country of {country(c['country'])}."
        out.append({"id": f"city-{i}", "title": c["name"], "text": text})
    for i, k in enumerate(w.countries):
        text = f"{k['name']} is a country. Its capital is the city of {city(k['capital'])}."
        out.append({"id": f"country-{i}", "title": k["name"], "text": text})
    return out


def fact_passages(world: World) -> list[dict]:
    """The corpus in the "facts" style: one {"id", "title", "text"} passage per fact, id
    "<card id>-<relation>" (the relation of the single-hop question it answers), title the
    entity's name, the text worded like that question ("born in the city of", "founded in the year")."""
    w, out = world, []
    city, org, country = (lambda i: w.cities[i]["name"]), (lambda i: w.orgs[i]["name"]), (lambda i: w.countries[i]["name"])

    def add(card: str, relation: str, title: str, text: str) -> None:
        out.append({"id": f"{card}-{relation}", "title": title, "text": text})

    for i, p in enumerate(w.people):
        n = p["name"]
        add(f"person-{i}", "birth_city", n, f"{n} was born in the city of {city(p['city'])}.")
        add(f"person-{i}", "birth_year", n, f"{n} was born in the year {p['year']}.")
        add(f"person-{i}", "employer", n, f"{n} works for the organisation {org(p['org'])}.")
    for i, o in enumerate(w.orgs):
        n = o["name"]
        add(f"org-{i}", "headquarters", n, f"The headquarters of {n} are in the city of {city(o['city'])}.")
        add(f"org-{i}", "founded", n, f"{n} was founded in the year {o['year']}.")
        add(f"org-{i}", "members", n, f"{n} has {o['members']} members.")
    for i, c in enumerate(w.cities):
        add(f"city-{i}", "country", c["name"], f"The city of {c['name']} is in the country of {country(c['country'])}.")
    for i, k in enumerate(w.countries):
        add(f"country-{i}", "capital", k["name"], f"The capital of {k['name']} is the city of {city(k['capital'])}.")
    return out


def _q(kind: str, i: int, relation: str, hops: int, question: str, answer: object, gold: list[str],
       facts: list[str] | None = None, then: str = "") -> dict:
    """One question. gold: the cards to read in order; facts: the fact passages to read in order
    (a single-hop question: its own relation's fact); then: a two-hop question's second search,
    the bridge entity's own single-hop question."""
    return {"kind": kind, "index": i, "relation": relation, "hops": hops, "question": question,
            "answer": str(answer), "gold": gold, "facts": facts or [f"{gold[0]}-{relation}"], "then": then}  # fmt: skip


def questions(world: World) -> list[dict]:
    """Every question the world asks, each with the entity it names (kind, index), its hops, its
    answer, its gold passage ids in reading order as cards (`gold`: a two-hop question's card it
    names, then the bridge card) and as facts (`facts`), and a two-hop question's second search
    (`then`: the bridge's own single-hop question)."""
    w, out = world, []
    hq = lambda o: f"In which city is the headquarters of {w.orgs[o]['name']}?"  # noqa: E731 - the bridges' own questions
    founded = lambda o: f"In which year was {w.orgs[o]['name']} founded?"  # noqa: E731
    in_country = lambda c: f"In which country is the city of {w.cities[c]['name']}?"  # noqa: E731
    for i, p in enumerate(w.people):
        name, city, org = p["name"], w.cities[p["city"]], w.orgs[p["org"]]
        me, org_id, city_id = f"person-{i}", f"org-{p['org']}", f"city-{p['city']}"
        out += [
            _q("person", i, "birth_city", 1, f"In which city was {name} born?", city["name"], [me]),
            _q("person", i, "birth_year", 1, f"In which year was {name} born?", p["year"], [me]),
            _q("person", i, "employer", 1, f"Which organisation does {name} work for?", org["name"], [me]),
            _q("person", i, "employer_city", 2, f"In which city is the headquarters of the organisation that {name} works for?",
               w.cities[org["city"]]["name"], [me, org_id], [f"{me}-employer", f"{org_id}-headquarters"], hq(p["org"])),
            _q("person", i, "employer_year", 2, f"In which year was the organisation that {name} works for founded?", org["year"],
               [me, org_id], [f"{me}-employer", f"{org_id}-founded"], founded(p["org"])),
            _q("person", i, "birth_country", 2, f"In which country was {name} born?", w.countries[city["country"]]["name"],
               [me, city_id], [f"{me}-birth_city", f"{city_id}-country"], in_country(p["city"])),
        ]  # fmt: skip
    for i, o in enumerate(w.orgs):
        me, city = f"org-{i}", w.cities[o["city"]]
        out += [
            _q("org", i, "headquarters", 1, hq(i), city["name"], [me]),
            _q("org", i, "founded", 1, founded(i), o["year"], [me]),
            _q("org", i, "members", 1, f"How many members does {o['name']} have?", o["members"], [me]),
            _q("org", i, "headquarters_country", 2, f"In which country is the headquarters of {o['name']}?",
               w.countries[city["country"]]["name"], [me, f"city-{o['city']}"], [f"{me}-headquarters", f"city-{o['city']}-country"],
               in_country(o["city"])),
        ]  # fmt: skip
    for i, c in enumerate(w.cities):
        out.append(_q("city", i, "country", 1, in_country(i), w.countries[c["country"]]["name"], [f"city-{i}"]))
    for i, k in enumerate(w.countries):
        out.append(_q("country", i, "capital", 1, f"What is the capital of {k['name']}?", w.cities[k["capital"]]["name"], [f"country-{i}"]))
    return out


def held_out(world: World, seed: int) -> set[tuple[str, int]]:
    """(kind, index) of the entities whose questions are eval: a seeded EVAL_SHARE of each kind
    (at least one of a kind with two or more)."""
    rng, out = random.Random(f"{seed}-lookup-split"), set()
    for kind, items in (("person", world.people), ("org", world.orgs), ("city", world.cities), ("country", world.countries)):
        n = len(items)
        n_eval = min(max(1, round(n * EVAL_SHARE)), n - 1) if n > 1 else 0
        out |= {(kind, i) for i in rng.sample(range(n), n_eval)}
    return out


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")


def normalise_answer(text: str) -> str:
    """SQuAD-style normal form: lowercased, punctuation and the articles a/an/the removed, spaces
    collapsed. " The Vornak Institute." -> "vornak institute"; "2,340" -> "2340"."""
    s = _PUNCT.sub("", text.lower())
    return " ".join(_ARTICLES.sub(" ", s).split())


def parse_hops(text: str) -> tuple[int, ...] | None:
    """'1,2' -> (1, 2); '2' -> (2,); None unless a non-empty subset of HOPS."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and int(p) in HOPS for p in parts):
        return None
    return tuple(sorted({int(p) for p in parts}))


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    """`rows` as a JSONL file at `path`, written to a temporary file and renamed into place, so a
    reader (another rank, a crashed run's successor) never sees half a corpus."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    os.replace(tmp, path)


class Lookup(Task):
    """Single- and two-hop questions about a seeded fictional world; the answer is in its corpus only."""

    name = "lookup"

    def __init__(self, seed: int = 0, entities: int = 1000, hops: str = "1,2", num_train: int = 10_000,
                 num_eval: int = 500, cache_root: str | Path | None = None, style: str = "cards"):  # fmt: skip
        self.seed, self.entities, self.num_train, self.num_eval = seed, entities, num_train, num_eval
        if style not in PASSAGE_STYLES:
            raise ValueError(f"passages must be one of {PASSAGE_STYLES}, got {style!r}")
        self.style = style
        self.hops = parse_hops(hops)
        if self.hops is None:
            raise ValueError(f"hops must be a comma list of {HOPS}, got {hops!r}")
        self.cache_root = Path(cache_root) if cache_root is not None else None
        self.world = make_world(seed, entities)
        self._cache: dict[str, list[Problem]] = {}

    def corpus_path(self) -> str:
        """The world's corpus as a JSONL file (written on first call; the same file for every task
        of this seed, size and style): `<cache>/lookup/world-s<seed>-n<entities>-<version>.jsonl`,
        `...-facts-<version>.jsonl` for the facts style."""
        if self.cache_root is not None:
            root = self.cache_root
        else:
            from thinkrl.models import cache_dir  # noqa: PLC0415 - models pulls in transformers

            root = cache_dir() / "lookup"
        style = "-facts" if self.style == "facts" else ""
        path = root / f"world-s{self.seed}-n{self.entities}{style}-{GENERATOR_VERSION}.jsonl"
        if not path.is_file():
            write_jsonl_atomic(path, self.passages())
        return str(path)

    def passages(self) -> list[dict]:
        """The corpus rows of this task's passage style."""
        return fact_passages(self.world) if self.style == "facts" else passages(self.world)

    def _split(self) -> dict[str, list[Problem]]:
        held = held_out(self.world, self.seed)
        sides: dict[str, list[Problem]] = {"train": [], "eval": []}
        for q in questions(self.world):
            if q["hops"] not in self.hops:
                continue
            split = "eval" if (q["kind"], q["index"]) in held else "train"
            gold = q["facts"] if self.style == "facts" else q["gold"]
            meta = {"hops": q["hops"], "relation": q["relation"], "gold": gold, "then": q["then"],
                    "entity": f"{q['kind']}-{q['index']}"}  # fmt: skip
            pid = f"lookup-{q['kind']}-{q['index']}-{q['relation']}"
            sides[split].append(Problem(id=pid, question=q["question"], answer=q["answer"], meta=meta))
        rng = random.Random(f"{self.seed}-lookup-order")
        for split, limit in (("train", self.num_train), ("eval", self.num_eval)):
            rng.shuffle(sides[split])  # a cut keeps a mix of relations and hops
            sides[split] = sides[split][:limit]
        return sides

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        if not self._cache:
            self._cache = self._split()
        return list(self._cache[split])

    def examples(self, k: int = 1, max_chars: int = 300) -> list[tuple[str, str]]:
        """Example turns that show searching, single-hop and two-hop in turn (task.shots = 1: one
        single-hop turn; 2: one of each): the call `<search>question</search>`, the result the
        engine would insert (the search tool over this corpus with `k` and `max_chars`: a recipe
        priming with these sets [tools.search] k = 1, max_chars = 300, as recipes/search_r1.toml
        does), for a two-hop question a second search for the bridge entity the first result names,
        and the answer. Train side only, so never an eval entity. With the facts style the second
        search asks the bridge's own question (`then`), whose fact holds the answer."""
        from thinkrl.tools.search import make_search_tool  # noqa: PLC0415 - bm25s only when asked for

        search = make_search_tool(self.corpus_path(), k=k, max_chars=max_chars, cache_root=self.cache_root)
        titles = {p["id"]: p["title"] for p in self.passages()}
        train = self.problems("train")
        one = [p for p in train if p.meta["hops"] == 1][:NUM_EXAMPLES]

        def shown_right(p: Problem) -> bool:
            """Whether the example's searches find what it needs: the bridge's own card (cards), or the
            bridge in the first result and the answer in the second (facts)."""
            bridge = titles[p.meta["gold"][1]]
            if self.style == "facts":
                return bridge in search(p.question) and p.answer in search(p.meta["then"])
            return search(bridge).startswith(bridge + ":")

        two = [p for p in train if p.meta["hops"] == 2 and shown_right(p)][:NUM_EXAMPLES]
        # " So the answer is" after a result: a space there keeps ">" its own token, as it is in
        # the result the engine inserts ("</result></think>" would merge into "></")
        out = []
        for a, b in zip(one, two + [None] * len(one)):
            out.append((a.question, f"<think><search>{a.question}</search><result>{search(a.question)}</result> So the "
                                    f"answer is {a.answer}.</think> <answer>{a.answer}</answer>"))
            if b is not None:
                bridge = titles[b.meta["gold"][1]]
                query = b.meta["then"] if self.style == "facts" else bridge
                out.append((b.question, f"<think><search>{b.question}</search><result>{search(b.question)}</result> "
                                        f"Now {bridge}. <search>{query}</search><result>{search(query)}</result> "
                                        f"So the answer is {b.answer}.</think> <answer>{b.answer}</answer>"))
        return out

    def score(self, completion: str, problem: Problem) -> float:
        """1.0 if the completion's <answer> (or \\boxed{}) equals the reference after
        normalise_answer, else 0.0; the verifier of eval and reward alike."""
        pred = self.extract(completion)
        return float(pred is not None and normalise_answer(pred) == normalise_answer(problem.answer))

    def vote_key(self, answer: str) -> str:
        return normalise_answer(answer)

