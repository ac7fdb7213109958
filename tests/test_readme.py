"""The README is run by CI as written (.ci/readme.py, called by .ci/run); these fast checks keep it runnable.

The marking convention (in full at the top of .ci/readme.py): every ```bash / ```python block of README.md runs,
in order, in a fresh virtual environment installed by the README's first line, unless the line directly above
its fence is `<!-- ci: skip: REASON -->`. `<!-- ci: timeout=SECONDS creates=PATH[,PATH] -->` sets a block's time
limit and the files it must leave behind. A command meant to fail ends with the comment `# exit status N`.
"""
import importlib.util
import subprocess
import sys

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("ci_readme", ROOT / ".ci" / "readme.py")
ci = importlib.util.module_from_spec(spec)
sys.modules["ci_readme"] = ci  # dataclasses look their module up
spec.loader.exec_module(ci)


def test_the_readme_parses_and_every_skip_says_why():
    blocks = ci.parse((ROOT / "README.md").read_text())
    runnable = [b for b in blocks if b.lang]
    assert len(runnable) >= 10
    assert all(b.skip is None or len(b.skip) > 5 for b in runnable)
    install, serve, test = ci.first_commands(blocks)
    assert install.startswith("pip install ") and serve == "python app.py"
    assert "pytest" in test and "tests/setup.sh" in test


def test_ci_runs_the_readme_test_command_and_the_readme_stage():
    run = (ROOT / ".ci" / "run").read_text()
    assert "readme.py --test-command" in run and "\npython .ci/readme.py\n" in run
    out = subprocess.run(["python", ".ci/readme.py", "--test-command"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == ci.first_commands(ci.parse(
        (ROOT / "README.md").read_text()))[2]


README = """# x

```bash
pip install -e ".[app]" && python app.py
bash tests/setup.sh && python -m pytest -q tests
```

<!-- ci: skip: needs the internet -->
```bash
curl -LO http://example.org/x.pth
```

<!-- ci: timeout=90 creates=runs/a.png,runs/b.png -->
```python
print(1)
```

```text
not run
```
"""


def test_marks_are_read_from_the_line_above_the_fence():
    blocks = ci.parse(README)
    assert [(b.line, b.lang) for b in blocks] == [(3, "bash"), (9, "bash"), (14, "python"), (18, None)]
    assert blocks[1].skip == "needs the internet" and blocks[1].runs is False
    assert (blocks[2].timeout, blocks[2].creates) == (90, ["runs/a.png", "runs/b.png"])
    assert blocks[0].timeout == ci.DEFAULT_TIMEOUT and blocks[3].runs is False
    assert ci.first_commands(blocks) == ('pip install -e ".[app]"', "python app.py",
                                         "bash tests/setup.sh && python -m pytest -q tests")


@pytest.mark.parametrize("mark, message", [
    ("<!-- ci: skip -->\n```bash\nls\n```\n", "needs a reason"),
    ("<!-- ci: timeout=ten -->\n```bash\nls\n```\n", "unknown ci mark"),
    ("<!-- ci: retries=3 -->\n```bash\nls\n```\n", "unknown ci mark"),
    ("<!-- ci: timeout=5 -->\n\n```bash\nls\n```\n", "directly above a code fence"),
    ("<!-- ci: timeout=5 -->\n```text\nls\n```\n", "never runs"),
    ("```bash\nls\n", "never closed"),
])
def test_a_bad_mark_is_an_error_naming_the_line(mark, message):
    with pytest.raises(ci.ReadmeError, match=message):
        ci.parse(mark)


@pytest.mark.parametrize("code, status", [
    ("false  # exit status 1\necho after\n", 0),          # the expected failure, then the block goes on
    ("true  # exit status 4\n", 1),                       # expected 4, got 0: the block fails
    ("sh -c 'exit 4'   # exit status 4: the upload failed\n", 0),
    ("false\necho never\n", 1),                           # set -e: an unexpected failure stops the block
    ("false | true\n", 1),                                # pipefail
])
def test_bash_blocks_stop_at_the_first_unexpected_failure(code, status, tmp_path):
    out = subprocess.run(["bash", "-c", ci.bash_script(code)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == status, out.stderr
    assert ("never" not in out.stdout)
