"""Structural rules of the package: no import circle, no oversized file, equations in their homes."""

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "spikeforge"
MAX_LINES = 450
# files allowed above the limit: none (keep it that way; split a file instead of listing it)
LINE_LIMIT_EXCEPTIONS: set[str] = set()


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: pathlib.Path, modules: set[str]) -> set[str]:
    """Package modules imported by ``path`` at module level: statements outside functions and
    classes, including under module-level ``if``/``try``, excluding ``if TYPE_CHECKING``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()

    def visit(stmts):
        for node in stmts:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for h in getattr(node, "handlers", []):
                    visit(h.body)
                visit(getattr(node, "finalbody", []))
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target in modules:
                    out.add(target)
                for a in node.names:  # "from . import x" imports the submodule x
                    if f"{target}.{a.name}" in modules:
                        out.add(f"{target}.{a.name}")

    visit(ast.parse(path.read_text()).body)
    out.discard(name)
    return out


def _graph():
    """Module -> package modules it imports at module level. Importing ``a.b.c`` first runs the
    packages ``a`` and ``a.b``, so those are edges too (except the importer's own packages, which
    are already being initialised when it runs)."""
    files = sorted(SRC.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    graph = {}
    for f in files:
        mod = _module_name(f)
        own = {".".join(mod.split(".")[:k]) for k in range(1, mod.count(".") + 1)}
        edges = set()
        for target in _top_level_imports(f, modules):
            parts = target.split(".")
            edges |= {".".join(parts[:k]) for k in range(1, len(parts) + 1)}
        graph[mod] = {m for m in edges if m in modules and m not in own and m != mod}
    return graph


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_import_circle_among_the_package_modules():
    graph = _graph()
    assert "spikeforge.engines.base" in graph and graph["spikeforge.engines"]  # the parser sees the imports
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_source_file_over_the_line_limit(path):
    if path.relative_to(SRC).as_posix() in LINE_LIMIT_EXCEPTIONS:
        pytest.skip("listed in LINE_LIMIT_EXCEPTIONS")
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(SRC)} has {n} lines (limit {MAX_LINES}): split it"


def _tracked_text_files() -> list[pathlib.Path]:
    root = SRC.parents[1]
    suffixes = {".py", ".md", ".toml", ".txt", ".cfg", ".yml", ".yaml", ".sh"}
    skip = {".venv", ".git", "runs", "build", "dist", "node_modules"}
    found = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        hidden_or_env = any(part.startswith(".") or part == "site-packages" for part in rel[:-1])
        if p.is_file() and p.suffix in suffixes and not (set(rel[:-1]) & skip) and not hidden_or_env:
            found.append(p)
    return found


def test_no_merge_conflict_markers_left_in_the_tree():
    markers = ("<" * 7 + " ", "=" * 7 + "\n", ">" * 7 + " ")
    bad = []
    for p in _tracked_text_files():
        for n, line in enumerate(p.read_text(errors="replace").splitlines(keepends=True), 1):
            if line.startswith(markers):
                bad.append(f"{p.relative_to(SRC.parents[1])}:{n}")
    assert not bad, "merge-conflict markers left in: " + ", ".join(bad)
