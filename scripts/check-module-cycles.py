#!/usr/bin/env python3
"""Fails when modules of one crate depend on each other in a cycle.

For every crate of the workspace (each `src/` folder), a module's
dependencies are the modules its `use crate::…`, `crate::…` and `super::…`
paths name. A module depending on its own ancestor or descendant is how
Rust module trees are built (a parent re-exports, a child uses its
parent's items), so only edges between modules where neither contains the
other count. Prints each cycle found and exits 1; exits 0 when there is
none.

    scripts/check-module-cycles.py
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")
GROUP = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)*)::\{([^;]*?)\}", re.S)


def module_of(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    if parts and parts[0] == "bin":
        return ()
    return tuple(parts)


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def references(text: str):
    """(anchor, path) pairs: anchor is crate or super."""
    for match in GROUP.finditer(text):
        anchor, prefix, inner = match.group(1), match.group(2), match.group(3)
        for item in re.findall(r"[a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*", inner):
            yield anchor, prefix + "::" + item
    for match in PATH.finditer(text):
        yield match.group(1), match.group(2)


def resolve(current: tuple, anchor: str, path: str, modules: set, is_dir_module: bool):
    names = [name for name in path.split("::") if name]
    if anchor == "crate":
        base = []
    else:
        base = list(current if is_dir_module else current[:-1])
        while names and names[0] == "super":
            names.pop(0)
            base = base[:-1]
        base = base[:-1] if is_dir_module else base
    candidate = tuple(base + names)
    while candidate and candidate not in modules:
        candidate = candidate[:-1]
    return candidate


def related(a: tuple, b: tuple) -> bool:
    return a[: len(b)] == b or b[: len(a)] == a


def cycles_in(src: Path):
    files = [f for f in src.rglob("*.rs")]
    modules = {}
    for file in files:
        module = module_of(src, file)
        if module or file.stem in ("lib", "main"):
            modules.setdefault(module, []).append(file)
    graph = {module: set() for module in modules}
    for module, module_files in modules.items():
        for file in module_files:
            is_dir_module = file.stem in ("mod", "lib", "main")
            text = strip_comments(file.read_text())
            # Tests inside a module see everything; they are not the module's design.
            text = text.split("#[cfg(test)]")[0]
            for anchor, path in references(text):
                target = resolve(module, anchor, path, set(modules), is_dir_module)
                if target != module and not related(target, module):
                    graph[module].add(target)
    found = []
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def main() -> int:
    failed = False
    for src in sorted(ROOT.glob("**/src")):
        if "target" in src.parts or ".dev" in src.parts or not src.is_dir():
            continue
        for cycle in cycles_in(src):
            failed = True
            print(f"{src.relative_to(ROOT)}: " + " -> ".join("::".join(m) or "crate" for m in cycle))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
