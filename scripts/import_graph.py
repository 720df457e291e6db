"""The package's import graph in figures: modules, import edges, and edges that run back up.

    python scripts/import_graph.py            # table
    python scripts/import_graph.py --json     # the same as JSON
    python scripts/import_graph.py --edges    # every edge that runs back up, and every private-name import
    python scripts/import_graph.py --root DIR # another tree's src/ (an older commit: git archive REV src | tar -x)

Reads src/voxhost with `ast` (nothing is imported or run). An edge is one module importing
another module of the package, at any depth in the file (lazy imports inside functions count:
they are dependencies all the same), except inside a module-level `__getattr__`: that is a
deprecated name's forwarding (PEP 562), listed apart as a shim, not part of the design. Layers, bottom to top, are the architecture as docs/architecture.md draws it; an
edge "runs back up" when a module imports one of a higher layer. Edges inside one layer are
allowed; a cycle between packages is reported separately.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "voxhost"

# Bottom (0) to top. A module's layer is that of its longest matching prefix.
LAYERS: dict[str, int] = {
    "voxhost": 0,  # errors, ids, plotting, the package's face
    "voxhost.ops": 1,
    "voxhost.audio": 1,
    "voxhost.engines": 2,
    "voxhost.cache": 2,
    "voxhost.scheduler": 3,
    "voxhost.evaluation": 7,  # eval-set tools for benchmarks and tests: no runtime code may use them
    "voxhost.stt": 4,
    "voxhost.tts": 4,
    "voxhost.realtime": 5,
    "voxhost.services": 6,
    "voxhost.loadtest": 7,
    "voxhost.planner": 7,
    "voxhost.api": 7,
    "voxhost.gateway": 7,  # where api/gateway/ stood before: figures of older trees stay comparable
    "voxhost.cli": 8,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def package(module: str) -> str:
    """voxhost.<subpackage> for a module in a subpackage; a top-level module is a unit of its own."""
    parts = module.split(".")
    return ".".join(parts[:2])


def resolve(module: str, node: ast.ImportFrom | ast.Import, known: set[str], is_package: bool) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for one import statement."""
    out: list[tuple[str, list[str]]] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == PACKAGE:
                target = alias.name
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target:
                    out.append((target, []))
        return out
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source.split(".")[0] != PACKAGE:
        return out
    plain: list[str] = []
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        if sub in known:  # `from voxhost.tts import service`
            out.append((sub, []))
        else:
            plain.append(alias.name)
    if plain:
        target = source
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target:
            out.append((target, plain))
    return out


SHIMS: list[tuple[str, str]] = []  # (module, the module a deprecated name is forwarded to)


def graph() -> tuple[set[str], set[tuple[str, str]], list[tuple[str, str, str]]]:
    files = {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}
    known = set(files)
    edges: set[tuple[str, str]] = set()
    private: list[tuple[str, str, str]] = []
    SHIMS.clear()
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        forwarding = {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
                      for n in ast.walk(f)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if id(node) in forwarding:
                SHIMS.extend((module, target) for target, _ in resolve(module, node, known,
                                                                      path.name == "__init__.py"))
                continue
            for target, names in resolve(module, node, known, path.name == "__init__.py"):
                if target == module:
                    continue
                edges.add((module, target))
                for name in names:
                    if name.startswith("_") and not name.startswith("__"):
                        private.append((module, target, name))
    return known, edges, private


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected sets of packages (more than one): imports that go round."""
    adj: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        pa, pb = package(a), package(b)
        if pa != pb:
            adj[pa].add(pb)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in list(adj):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--edges", action="store_true", help="list the edges that run back up and private imports")
    parser.add_argument("--root", type=Path, help="the src/ directory to read (default: this checkout's)")
    args = parser.parse_args()
    if args.root is not None:
        global ROOT
        ROOT = args.root.resolve()
    modules, edges, private = graph()
    up = sorted((a, b) for a, b in edges if layer(b) > layer(a))
    cross = [(a, b) for a, b in edges if package(a) != package(b)]
    circles = cycles(edges)
    figures = {
        "modules": len(modules),
        "import edges": len(edges),
        "edges between packages": len(cross),
        "edges that run back up": len(up),
        "package cycles": len(circles),
        "private names imported from another module": len(private),
        "deprecated names forwarded (not counted above)": len(SHIMS),
    }
    if args.json:
        print(json.dumps({**figures, "back_up": up, "cycles": circles, "private": private, "shims": SHIMS}, indent=2))
        return 0
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    if args.edges:
        for a, b in up:
            print(f"up: {a} (layer {layer(a)}) -> {b} (layer {layer(b)})")
        for group in circles:
            print("cycle: " + " <-> ".join(group))
        for a, b, name in private:
            print(f"private: {a} takes {b}.{name}")
        for a, b in SHIMS:
            print(f"shim: {a} forwards deprecated names to {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
