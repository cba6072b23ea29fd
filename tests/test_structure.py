"""The package's shape, read from its imports (every import, function-level ones too): no import
circle, no stage loop importing another stage loop's module, llama-family internals only in
thinkrl/model/, and files that read in one sitting."""

import ast
from pathlib import Path

import thinkrl

ROOT = Path(thinkrl.__file__).parent
STAGES = {f"thinkrl.train.{s}" for s in ("rl", "sft", "rm", "dpo", "distill", "sample", "pipeline", "merge")}
# composing stages is what these do: they may call the other stages' entry points, nothing else of them
COMPOSERS = {"thinkrl.train.pipeline": {"train", "sample", "distill", "run"}, "thinkrl.train.distill": {"train", "sample"}}
MAX_LINES = 420  # "about 400"


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("thinkrl")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("thinkrl"):
            for a in node.names:  # `from thinkrl.train import sft` imports the module thinkrl.train.sft
                sub = f"{node.module}.{a.name}"
                found.append((sub, []) if sub in known else (node.module, [a.name]))
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: {i for i, _ in imports(p, known) if i in known and i != m} for m, p in known.items()}


def test_no_import_circle():
    edges = graph()
    index, low, stack, on, circles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                circles.append(sorted(scc))

    for v in edges:
        if v not in index:
            visit(v)
    # a package importing its own submodules (to re-export them) is not a circle of the design
    circles = [c for c in circles if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert not circles


def test_stage_loops_stand_side_by_side():
    known = modules()
    for stage in STAGES & known.keys():
        for target, names in imports(known[stage], known):
            if target in STAGES and target != stage:
                allowed = COMPOSERS.get(stage, set())
                assert names and set(names) <= allowed, f"{stage} imports {names or 'the module'} from {target}"


def test_llama_internals_only_in_the_model_package():
    for path in ROOT.rglob("*.py"):
        if path.parent.name == "model":
            continue
        text = path.read_text()
        for word in ("q_proj", "self_attn", "rotary_emb", "input_layernorm", "decoder_layers"):
            assert word not in text, f"{path.relative_to(ROOT)} reaches into the decoder ({word})"


def test_files_read_in_one_sitting():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long
