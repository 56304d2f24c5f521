"""The package's layout rules (README, "Layout"), derived from the source itself.

- Folders come in one order (LAYERS): a module may import its own folder or an earlier one, never a later one.
- The import graph has no circle, between modules or between folders.
- Library modules import what they use at the top; only the command modules (which parse before they load the
  library, to keep `--help` fast) and a short list of optional heavy packages may import inside a function.
- No function is longer than MAX_FUNCTION_LINES, except the few named in LONG_FUNCTIONS with the reason.
- Only the run-directory module knows the run directory's file names.
"""

from __future__ import annotations

import ast
import os
import re

import pytest

pytestmark = pytest.mark.pure_python

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "alexnet_tf")

# Each layer may import itself and the layers before it. The commands and the public API are last.
LAYERS = [
    ["errors", "core"],
    ["config"],
    ["data"],
    ["models"],
    ["figures"],
    ["runs"],
    ["training", "caffe"],
    ["serving"],
    ["inference"],
    ["studies"],
    ["api", "applications", "cli", "__init__", "commands"],
]
COMMANDS = {"train", "prepare", "evaluate", "predict", "visualize", "export", "convert", "features", "ablate",
            "dataservice"}
# Optional or slow-to-import packages that library code may load when the feature is used.
LAZY_PACKAGES = {"tensorflow_datasets", "tensorflow_serving", "tf2onnx", "onnx", "onnxruntime", "ai_edge_litert",
                 "openvino", "h5py", "jax", "torch", "scipy"}
# The one module whose job is to load TensorFlow on demand (quietly, for the commands and the API).
LOADERS = {"core.tensorflow_setup"}
MAX_FUNCTION_LINES = 60
# Functions allowed to be longer, each with the reason (the issue that set the limit asks for one).
LONG_FUNCTIONS: dict[str, str] = {}


def modules() -> dict[str, str]:
    """{dotted name inside the package: path} of every module ('__init__' for a folder's own file)."""
    found = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")
                found[dotted] = path
    return found


def folder_of(module: str) -> str:
    """The layer name of a module: its top folder, or 'commands' for a command module."""
    top = module.split(".")[0]
    return "commands" if top in COMMANDS else top


RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _hint_only_nodes(tree: ast.AST) -> set[int]:
    return {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
            and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
            for statement in block.body for n in ast.walk(statement)}


def resolve(target: str, known: dict[str, str]) -> str | None:
    """The package module an absolute dotted name inside alexnet_tf refers to (a module, or a name in one)."""
    if not target.startswith("alexnet_tf"):
        return None
    inner = target[len("alexnet_tf"):].lstrip(".")
    if not inner:
        return "__init__"
    while inner:
        if inner in known:
            return inner
        if f"{inner}.__init__" in known:
            return f"{inner}.__init__"
        inner = inner.rpartition(".")[0]
    return "__init__"


def imports(path: str, known: dict[str, str]) -> list[tuple[str, int, bool]]:
    """(package module imported, line, inside a function) for every import that runs (not TYPE_CHECKING ones)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    hints = _hint_only_nodes(tree)
    inner_ids = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f)}
    out = []
    for node in ast.walk(tree):
        if id(node) in hints:
            continue
        targets = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        for target in targets:
            module = resolve(target, known)
            if module is not None:
                out.append((module, node.lineno, id(node) in inner_ids))
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: {t for t, _, _ in imports(p, known) if t != m} for m, p in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    """One circle in a directed graph (as a path that starts and ends on the same node), or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_every_folder_and_command_has_a_layer():
    assert sorted({folder_of(m) for m in modules()} - set(RANK)) == []


def test_no_module_imports_a_later_layer():
    known = modules()
    upward = [f"{m}:{line} imports {t}" for m, p in known.items() for t, line, _ in imports(p, known)
              if RANK[folder_of(t)] > RANK[folder_of(m)]]
    assert upward == []


def test_no_import_circle_between_modules():
    assert find_cycle(graph()) == []


def test_no_import_circle_between_folders():
    folders: dict[str, set[str]] = {}
    for module, targets in graph().items():
        folders.setdefault(folder_of(module), set()).update(folder_of(t) for t in targets if folder_of(t)
                                                            != folder_of(module))
    assert find_cycle(folders) == []


def test_the_circle_finder_finds_a_planted_circle():
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(planted) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_library_modules_import_at_the_top():
    known = modules()
    late = []
    for module, path in known.items():
        if folder_of(module) in ("commands", "api", "__init__") or module in LOADERS:
            continue
        tree = ast.parse(open(path, encoding="utf-8").read())
        hints = _hint_only_nodes(tree)
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if id(node) in hints or not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                late += [f"{module}:{node.lineno} imports {n} inside {function.name}" for n in names
                         if n and n.split(".")[0] not in LAZY_PACKAGES]
    assert late == []


def test_no_function_is_longer_than_the_limit():
    long = []
    for module, path in modules().items():
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                name = f"{module}.{node.name}"
                if length > MAX_FUNCTION_LINES and name not in LONG_FUNCTIONS:
                    long.append(f"{name}: {length} lines")
    assert long == []


def test_only_the_run_directory_module_names_its_files():
    # The folder name as a string or in a path ("checkpoints", RUN/checkpoints/ckpt-N), and the two file names;
    # "checkpoints" as a plain English word in a sentence is fine.
    pattern = re.compile(r"[\"'/]checkpoints\b|\bcheckpoints[/\"']|config\.yaml|summary\.json")
    named = [f"{m}:{i}: {line.strip()}" for m, p in modules().items() if m != "runs.rundir"
             for i, line in enumerate(open(p, encoding="utf-8"), 1) if pattern.search(line)]
    assert named == []
