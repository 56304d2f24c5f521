"""The package's layout rules (README, "Layout"): data flows one way, files -> dataset -> batches -> step ->
checkpoint -> export, and no module imports one that comes later; every module is short enough to read in one
sitting; only the run-directory module knows the run directory's file names."""

from __future__ import annotations

import ast
import os
import re

import pytest

pytestmark = pytest.mark.pure_python

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "alexnet_tf")
MAX_LINES = 450

# Each module's place on the path; the commands and the trained-model loader come after everything they use.
STAGES = {
    "base": ["core.__init__", "models.__init__", "training.__init__", "runs.__init__", "serving.__init__", "inference.__init__", "caffe.__init__", "figures.__init__", "__init__", "api", "cli", "config", "errors", "core.files", "core.locks", "core.progress"],
    "dataset": ["data.__init__", "data.demo", "data.labels", "data.prepared", "data.preprocess", "data.shards",
                "data.sources", "data.stats", "data.verify", "data.vocab"],
    "batches": ["data.augment", "data.pipeline"],
    "step": ["models.crops", "models.devices", "figures.drawing", "models.layers", "training.metrics", "models.alexnet", "training.optim", "training.schedule", "training.steps", "training.summaries"],
    "checkpoint": ["caffe.net", "caffe.proto", "training.finetune", "runs.rundir", "training.state", "training.trainer"],
    "export": ["serving.savedmodel"],
    "use": ["convert", "evaluate", "export", "predict", "prepare", "train", "inference.trained", "visualize"],
}
ORDER = {module: rank for rank, modules in enumerate(STAGES.values()) for module in modules}


def modules() -> dict[str, str]:
    """{dotted name inside the package: path} of every module."""
    found = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                found[os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, ".")] = path
    return found


def imported(path: str) -> list[tuple[str, int]]:
    """(module inside the package, line) for every import of one of the package's modules, wherever it stands
    (imports for type hints only, under `if TYPE_CHECKING:`, run nothing and do not count)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    hints_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                  and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                  for statement in block.body for n in ast.walk(statement)}
    out = []
    for node in ast.walk(tree):
        if id(node) in hints_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "alexnet_tf":
            base = node.module[len("alexnet_tf"):].lstrip(".")
            for alias in node.names:
                candidate = f"{base}.{alias.name}" if base else alias.name
                out.append((candidate if candidate in ORDER else base or "__init__", node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name[len("alexnet_tf."):], node.lineno) for a in node.names if a.name.startswith("alexnet_tf.")]
    return [(name if name != "data" else "data.__init__", line) for name, line in out]


def test_every_module_has_a_place_on_the_path():
    assert sorted(set(modules()) - set(ORDER)) == []
    assert sorted(set(ORDER) - set(modules())) == []  # no stale entries: the table is the package


def test_no_module_imports_one_that_comes_later():
    late = []
    for module, path in modules().items():
        if module == "api":  # the public API is the top: it calls into every stage when used
            continue
        for target, line in imported(path):
            if target in ORDER and ORDER[target] > ORDER[module]:
                late.append(f"{module}:{line} imports {target}")
    assert late == []


def test_no_module_is_over_450_lines():
    long = {m: n for m, p in modules().items() if (n := len(open(p, encoding="utf-8").read().splitlines())) > MAX_LINES}
    assert long == {}


def test_only_the_run_directory_module_names_its_files():
    # The folder name as a string or in a path ("checkpoints", RUN/checkpoints/ckpt-N), and the two file names;
    # "checkpoints" as a plain English word in a sentence is fine.
    pattern = re.compile(r"[\"'/]checkpoints\b|\bcheckpoints[/\"']|config\.yaml|summary\.json")
    named = [f"{m}:{i}: {line.strip()}" for m, p in modules().items() if m != "runs.rundir"
             for i, line in enumerate(open(p, encoding="utf-8"), 1) if pattern.search(line)]
    assert named == []
