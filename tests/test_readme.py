"""The README's commands, run as written and in order, in a fresh folder: the README cannot drift from the code.

Every ```bash block of README.md is run line by line (a line ending in a backslash continues on the next; `a && b`
runs b only after a), every ```python block as a script, each in one fresh temporary folder with a fresh home and
$ALEXNET_TF_CACHE set to a fresh folder apart from it (so the README's paths into the cache must honour the variable:
`${ALEXNET_TF_CACHE:-~/.cache/alexnet_tf}`; the quickstart makes that cache itself), with nothing from the
repository in it (`configs/NAME.yaml` names a shipped config from any folder). Each command must exit 0.

Small settings: `python -m alexnet_tf.train` commands get SMALL_TRAINING appended (a narrower network, one epoch,
a tenth of the demo images), and the demo folder in the README's paths is renamed to that smaller demo's (its name
holds the image counts), so the whole README runs in about a minute; every other setting and path stays as written.

Commands that cannot run here are skipped by the explicit list SKIPPED below; the README marks each block holding
such commands with a `<!-- readme-test: skip (reason) -->` line just above it, and a marked block may hold nothing
else (so the marker cannot hide a command that should run).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

# Appended to every `python -m alexnet_tf.train` command: a far smaller network for one epoch, on a demo dataset of
# 30 + 5 images per class instead of 300 + 50 (the same 10 classes, drawn by the same generator).
SMALL_TRAINING = ["--set", "model.width=0.125", "--set", "model.fc_width=64", "--set", "train.epochs=1",
                  "--set", "data.demo_train_per_class=30", "--set", "data.demo_val_per_class=5"]
# ... so the demo folder that the README's paths name is the smaller one's (the folder name says the counts).
DEMO_FOLDER, SMALL_DEMO_FOLDER = "demo-v2-c10-t300-v50-s1234", "demo-v2-c10-t30-v5-s1234"

# Commands that are not run, by prefix, and why.
SKIPPED = {
    "pip install": "the package is already installed in the environment running the tests",
    "apt-get install": "a system package (Fashion-MNIST's files), installed by .ci/run before the tests",
    "python -m pytest": "the test suite this test is part of",
    "tensorboard": "a server that runs until it is stopped",
    "tensorflow_model_server": "not on PyPI or in Debian: cannot be installed here",
    "curl": "talks to tensorflow_model_server",
    "python serving/rest_client.py": "talks to tensorflow_model_server",
    "python -m alexnet_tf.train --config configs/alexnet_ilsvrc2012.yaml": "needs ImageNet and days of GPU time",
    "python -m alexnet_tf.evaluate --model runs/ilsvrc2012": "needs the ImageNet run above",
    "python -m alexnet_tf.convert caffe bvlc_alexnet.caffemodel": "bvlc_alexnet.caffemodel cannot be downloaded here",
    "python -m alexnet_tf.evaluate --model runs/bvlc_alexnet": "needs the converted bvlc_alexnet",
    "python -m alexnet_tf.train --init-from runs/bvlc_alexnet": "needs the converted bvlc_alexnet",
}
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\b")
# TensorFlow's C++ start-up lines, which every command must keep out of its output (see docs/troubleshooting.md).
TF_NOISE = re.compile(r"absl::InitializeLog|oneDNN custom operations|cuda drivers|cuInit|cpu_feature_guard|"
                      r"^[IWEF]0000 ", re.MULTILINE)
SECONDS_PER_COMMAND = 300


def readme_blocks(text: str) -> list[tuple[str, str, bool]]:
    """(language, code, marked skip) of every fenced code block, in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        blocks.append((fence.group(1), "\n".join(lines[i + 1:end]), bool(SKIP_MARK.search(previous))))
        i = end + 1
    return blocks


def without_comment(line: str) -> str:
    """The line without a trailing `# comment` (a # after a space, outside quotes)."""
    for match in re.finditer(r"\s#", line):
        before = line[:match.start()]
        if before.count("'") % 2 == 0 and before.count('"') % 2 == 0:
            return before
    return line


def bash_commands(code: str) -> list[str]:
    """The commands of a bash block: continued lines joined, `a && b` split, comments and blank lines dropped."""
    commands, current = [], ""
    for line in code.splitlines():
        line = without_comment(line).rstrip()
        current += line[:-1] + " " if line.endswith("\\") else line
        if line.endswith("\\"):
            continue
        stripped = current.strip()
        current = ""
        if stripped and not stripped.startswith("#"):
            commands += [part.strip() for part in stripped.split(" && ")]
    return commands


def skip_reason(command: str) -> str | None:
    return next((why for prefix, why in SKIPPED.items() if command.startswith(prefix)), None)


def planned_steps() -> list[tuple[str, str, str | None]]:
    """(kind 'bash' or 'python', code, skip reason or None) for every README command, in order."""
    steps = []
    for language, code, marked in readme_blocks(README.read_text(encoding="utf-8")):
        if language == "python":
            assert not marked, "a marked python block: the README's Python must run"
            steps.append(("python", code, None))
        elif language == "bash":
            for command in bash_commands(code):
                reason = skip_reason(command)
                assert reason or not marked, (f"README: {command!r} is in a block marked readme-test: skip, but "
                                              f"tests/test_readme.py's SKIPPED list does not skip it")
                steps.append(("bash", command, reason))
    return steps


def test_readme_is_short_and_links_every_docs_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in text, f"README.md does not link docs/{page.name}"
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO / link).exists(), f"README.md links {link}, which does not exist"
    assert text.startswith("# alexnet_tf\n\n```bash\npip install -e . && python -m alexnet_tf.train")
    assert DEMO_FOLDER in text  # the demo path that the slow test renames to its smaller demo's


def test_layout_section_names_every_module():
    text = README.read_text(encoding="utf-8")
    layout = text[text.index("## Layout"):text.index("## Documentation")]
    package = REPO / "alexnet_tf"
    missing = [str(path.relative_to(package)) for path in sorted(package.rglob("*.py"))
               if "__pycache__" not in path.parts and f"`{path.name}`" not in layout]
    assert missing == [], f"README's Layout section does not name {missing}"


def test_every_skipped_command_is_in_the_list_and_every_marked_block_is_skipped():
    steps = planned_steps()
    assert any(kind == "bash" and reason is None for kind, _, reason in steps)
    for prefix in SKIPPED:  # a stale entry would skip nothing; keep the list honest
        assert any(command.startswith(prefix) for _, command, _ in steps), f"SKIPPED entry {prefix!r} is unused"


def first_run_and_its_evaluation_left_only_runs(work: Path) -> None:
    """Issue 13's check, on the README's first two commands (the quickstart's training in an empty folder, then
    `evaluate --model runs/latest`): runs/latest exists and names the run, and nothing was written outside runs/.
    (Their logs are checked for carriage returns and TensorFlow's C++ lines like every command's.)"""
    assert (work / "runs" / "latest").is_symlink() and (work / "runs" / "latest" / "config.yaml").is_file()
    assert sorted(os.listdir(work)) == ["runs"]
    assert sorted(os.listdir(work / "runs")) == sorted(["latest", os.readlink(work / "runs" / "latest")])


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path):
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("ALEXNET_TF_CACHE", "TF_CPP_MIN_LOG_LEVEL", "ALEXNET_TF_VERBOSE")}
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
               ALEXNET_TF_CACHE=str(tmp_path / "cache"))  # not under HOME: a path hard-coding ~/.cache fails
    ran, skipped, layout_checked = [], [], False
    for kind, code, reason in planned_steps():
        if reason:
            skipped.append(f"{code[:60]}...: {reason}")
            continue
        code = code.replace(DEMO_FOLDER, SMALL_DEMO_FOLDER)
        if kind == "python":
            script = work / f"readme_example_{len(ran)}.py"
            script.write_text(code + "\n", encoding="utf-8")
            argv = [sys.executable, script.name]
            shown = f"python block #{len(ran)}"
        else:
            if code.startswith("python -m alexnet_tf.train"):
                code = " ".join([code] + SMALL_TRAINING)
            code = re.sub(r"^python(?=\s)", lambda _: sys.executable, code)
            argv = ["bash", "-c", code]
            shown = code
        start = time.monotonic()
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                              timeout=SECONDS_PER_COMMAND)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"README command failed ({done.returncode}): {shown}\n{output[-4000:]}"
        if kind == "bash" and " -m alexnet_tf." in code:  # the commands' own promise (the Python API loads
            # TensorFlow as any TensorFlow program does: see docs/troubleshooting.md)
            assert "\r" not in output, f"progress-bar updates in the output of {shown} (not a terminal)"
            noise = TF_NOISE.search(output)
            assert not noise, f"TensorFlow start-up line in the output of {shown}: {noise.group(0)!r}\n{output[:2000]}"
        if code.startswith(f"{sys.executable} -m alexnet_tf.evaluate --model runs/latest") and len(ran) == 1:
            first_run_and_its_evaluation_left_only_runs(work)
            layout_checked = True
        ran.append(f"{time.monotonic() - start:5.1f} s  {shown}")
        print(ran[-1], flush=True)
    print("ran:\n  " + "\n  ".join(ran) + "\nskipped:\n  " + "\n  ".join(skipped))
    assert ran
    assert layout_checked, "the README no longer starts with a training and `evaluate --model runs/latest`"
