#!/usr/bin/env python3
"""CI's README stage: the README's commands, as written, in a fresh virtual environment.

    python .ci/readme.py                 # the stage (.ci/run calls it); exit status 1 if a block fails
    python .ci/readme.py --list          # the blocks, what the stage does with each, and why
    python .ci/readme.py --from-line 150 # run the install, then only the blocks from README line 150 on
    python .ci/readme.py --test-command  # print the README's test command (its second line); .ci/run runs it
    python .ci/readme.py --venv /tmp/rv --keep-going   # reuse (or make) that environment; report every failure

What it does: copies the working tree (tracked and untracked, not ignored files) to a temporary folder, makes a
virtual environment there (`python -m venv`; pip's cache and configuration are the machine's, so torch comes from
the local wheel under the pip cap), and runs the README's ```bash and ```python blocks there, in README order,
as a user would in one terminal: the first line of the README's first block installs (exactly as written) and
starts the app, which keeps serving while the later blocks run (so gradio_client snippets reach it); every
later block then runs in the folder copy, with the environment and working directory the previous bash block
left (`export`, `cd` carry over; `&` background processes keep running until the stage ends). The second line
of the first block (the test suite) is not run here: .ci/run runs it itself, reading it from the README.

How to write README blocks (the marking convention):
- Every ```bash / ```sh / ```python block runs, unless marked. Other languages (```text, ```yaml) never run.
  A block must work offline in a fresh virtual environment with only what the README's first line and the
  README's earlier blocks install and create. Use real paths: files the repository ships (examples/,
  models/photo2sketch) or that an earlier block creates (runs/toy-data, runs/toy).
- Marks go in one HTML comment on the line directly above the opening fence (invisible on GitHub and the Hub):
      <!-- ci: skip: REASON -->                 not run; REASON (required) says why, e.g. "needs the internet"
      <!-- ci: timeout=900 -->                   seconds this block may take (default 600)
      <!-- ci: creates=runs/toy/samples/epoch_001.png,runs/toy/model/config.json -->
                                                after the block, each path must exist (relative to the checkout)
  Options combine: `<!-- ci: timeout=900 creates=runs/toy/losses.png -->`.
- bash blocks run with `set -eo pipefail`: the first failing command fails the block. A command that is meant to
  fail says so, readably, with a trailing comment on its (single) line: `# exit status 4` (the stage checks that
  exact status and goes on).
- python blocks run as a script file outside the checkout (`python /tmp/.../block_N.py`) with the checkout copy as
  the working directory: `import cyclegan` must come from the installed package, relative paths from the checkout.
- If port 7860 (the app), 8765 (tests/hub_server.py) or 8766 (tests/released_mirror.py) is taken, the stage uses a free port in
  its place throughout the blocks and says so.

tests/test_readme.py checks the marks (known options, a reason for every skip) and this parser, fast, in the
test suite; this stage runs the commands.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_LANGS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
DEFAULT_TIMEOUT = 600
APP_URL = "http://127.0.0.1:7860/"
PORTS = (7860, 8765, 8766)  # the app, tests/hub_server.py, tests/released_mirror.py
MARK = re.compile(r"^\s*<!--\s*ci:\s*(.*?)\s*-->\s*$")
EXIT_STATUS = re.compile(r"^(?P<cmd>.*?)\s+#\s*exit status (?P<status>\d+)\b.*$")


class ReadmeError(ValueError):
    """A README block or mark the stage cannot follow (one line, with the README line number)."""


@dataclass
class Block:
    line: int                 # README line number of the opening fence
    lang: str                 # "bash" or "python" (None: never run)
    code: str
    skip: str | None = None   # the reason, when marked skip
    timeout: int = DEFAULT_TIMEOUT
    creates: list[str] = field(default_factory=list)

    @property
    def runs(self) -> bool:
        return self.lang is not None and self.skip is None


def parse_mark(text: str, line: int) -> dict:
    """The options of one `<!-- ci: ... -->` comment."""
    if text.startswith("skip"):
        reason = re.sub(r"^skip\s*:?\s*", "", text).strip()
        if not reason:
            raise ReadmeError(f"README.md:{line}: `ci: skip` needs a reason: <!-- ci: skip: REASON -->")
        return {"skip": reason}
    out: dict = {}
    for item in text.split():
        key, _, value = item.partition("=")
        if key == "timeout" and value.isdigit():
            out["timeout"] = int(value)
        elif key == "creates" and value:
            out["creates"] = [p for p in value.split(",") if p]
        else:
            raise ReadmeError(f"README.md:{line}: unknown ci mark {item!r} (known: skip: REASON, timeout=SECONDS, "
                              f"creates=PATH[,PATH])")
    return out


def parse(text: str) -> list[Block]:
    """Every fenced code block of a README, with its marks. Raises ReadmeError on a bad mark or open fence."""
    lines = text.splitlines()
    for n, ln in enumerate(lines):
        nxt = lines[n + 1] if n + 1 < len(lines) else ""
        if MARK.match(ln) and not re.match(r"^\s*(```+|~~~+)", nxt):
            raise ReadmeError(f"README.md:{n + 1}: a ci mark must be on the line directly above a code fence")
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start = i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        if i == len(lines):
            raise ReadmeError(f"README.md:{start + 1}: code block never closed")
        i += 1
        block = Block(start + 1, RUN_LANGS.get(lang), "\n".join(body) + "\n")
        mark = MARK.match(lines[start - 1]) if start > 0 else None
        if mark:
            opts = parse_mark(mark.group(1), start)
            if block.lang is None:
                raise ReadmeError(f"README.md:{start}: a ci mark on a ```{lang} block, which never runs")
            block.skip = opts.get("skip")
            block.timeout = opts.get("timeout", DEFAULT_TIMEOUT)
            block.creates = opts.get("creates", [])
        blocks.append(block)
    return blocks


def first_commands(blocks: list[Block]) -> tuple[str, str, str]:
    """(install, serve, test) from the README's first block: `INSTALL && SERVE` on line 1, TEST on line 2."""
    first = next((b for b in blocks if b.lang == "bash"), None)
    lines = [ln for ln in first.code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")] if first else []
    if len(lines) < 2 or " && " not in lines[0]:
        raise ReadmeError("README.md: the first ```bash block must hold `INSTALL && python app.py` and the test command")
    install, serve = lines[0].rsplit(" && ", 1)
    return install.strip(), serve.strip(), lines[1].strip()


def bash_script(code: str) -> str:
    """A block as a bash script: `set -eo pipefail`, and each `CMD  # exit status N` line checked for status N."""
    out, continued = [], False
    for ln in code.splitlines():
        m = None if continued else EXIT_STATUS.match(ln)
        if m and not ln.rstrip().endswith("\\"):
            n = m.group("status")
            out.append(f"if {m.group('cmd')}; then __s=0; else __s=$?; fi; "
                       f"[ \"$__s\" -eq {n} ] || {{ echo \"README: expected exit status {n}, got $__s\" >&2; exit 1; }}")
        else:
            out.append(ln)
        continued = ln.rstrip().endswith("\\")
    return "set -eo pipefail\n" + "\n".join(out) + "\n"


# -- running ---------------------------------------------------------------------------------------------------
def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_tree(dest: Path) -> None:
    """The working tree as a fresh clone plus uncommitted changes would have it (tracked + untracked files)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


class Stage:
    def __init__(self, work: Path, venv: Path | None = None):
        self.work, self.checkout, self.venv = work, work / "checkout", venv or work / "venv"
        self.groups: list[int] = []
        self.cwd = self.checkout
        self.env = {k: v for k, v in os.environ.items()
                    if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_CACHE",
                                 "HF_HOME", "HF_HUB_OFFLINE", "CYCLEGAN_MODEL", "GRADIO_SERVER_PORT"}}
        self.env.update(VIRTUAL_ENV=str(self.venv), PATH=f"{self.venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
                        HF_HOME=str(work / "hf-home"), PYTHONUNBUFFERED="1")
        self.ports: dict[int, int] = {}

    def remap(self, code: str) -> str:
        for old, new in self.ports.items():
            code = re.sub(rf"(?<=[:\s]){old}\b", str(new), code)
        return code

    def spawn(self, argv: list[str], log: Path) -> subprocess.Popen:
        f = open(log, "ab")
        p = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.groups.append(p.pid)
        return p

    def run(self, argv: list[str], timeout: int, log: Path) -> int:
        p = self.spawn(argv, log)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            with open(log, "a") as f:
                f.write(f"\nREADME stage: killed after {timeout} s (raise it with <!-- ci: timeout=SECONDS -->)\n")
            return 124

    def bash(self, code: str, timeout: int, log: Path) -> int:
        state = self.work / "state"
        script = self.work / f"{log.stem}.sh"
        script.write_text(bash_script(self.remap(code)) + f"pwd > {state}.cwd\nenv -0 > {state}.env\n")
        status = self.run(["bash", str(script)], timeout, log)
        if status == 0:  # carry `cd` and `export` over to the next block
            self.cwd = Path(Path(f"{state}.cwd").read_text().strip())
            env = Path(f"{state}.env").read_bytes().decode().split("\0")
            self.env = dict(kv.split("=", 1) for kv in env if "=" in kv)
        return status

    def python(self, code: str, timeout: int, log: Path) -> int:
        script = self.work / f"{log.stem}.py"
        script.write_text(self.remap(code))
        return self.run([str(self.venv / "bin" / "python"), str(script)], timeout, log)

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pgid in self.groups:
                try:
                    os.killpg(pgid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            if sig == signal.SIGTERM:
                time.sleep(2)


def tail(path: Path, n: int = 40) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join("    " + ln for ln in lines[-n:])


def wait_for(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(1)
    return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--list", action="store_true", help="print the blocks and what the stage does with each")
    p.add_argument("--test-command", action="store_true", help="print the README's test command and exit")
    p.add_argument("--from-line", type=int, default=0, help="skip the blocks above this README line (not the install)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    p.add_argument("--keep-going", action="store_true", help="run the later blocks after a failure too")
    p.add_argument("--free-ports", action="store_true",
                   help="use free ports in place of 7860 and 8765 even when they look free (a shared machine)")
    p.add_argument("--venv", type=Path, default=None,
                   help="use this virtual environment (made if missing, kept afterwards) instead of a fresh one; "
                        "the README's install line still runs in it")
    args = p.parse_args(argv)
    try:
        blocks = parse(args.readme.read_text())
        install, serve, test = first_commands(blocks)
    except ReadmeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.test_command:
        print(test)
        return 0
    first = next(b for b in blocks if b.lang == "bash")
    rest = [b for b in blocks if b is not first and b.lang is not None]
    if args.list:
        print(f"README.md:{first.line} bash: run `{install}`, then `{serve}` in the background (until the end); "
              f"the test command `{test}` is .ci/run's")
        for b in rest:
            what = f"skip: {b.skip}" if b.skip else f"run (timeout {b.timeout} s" + (
                f", creates {', '.join(b.creates)})" if b.creates else ")")
            print(f"README.md:{b.line} {b.lang}: {what}   | {b.code.splitlines()[0] if b.code.strip() else ''}")
        return 0

    work = Path(tempfile.mkdtemp(prefix="cyclegan-readme-"))
    stage = Stage(work, args.venv.resolve() if args.venv else None)
    results: list[tuple[str, str, float]] = []
    failures: list[tuple[str, Path]] = []
    t_start = time.monotonic()
    try:
        copy_tree(stage.checkout)
        for port in PORTS:
            if args.free_ports or not port_free(port):
                stage.ports[port] = free_port()
                print(f"port {port}: the blocks use {stage.ports[port]} in its place")
        if 7860 in stage.ports:
            stage.env["GRADIO_SERVER_PORT"] = str(stage.ports[7860])
        print(f"README stage in {work} (python {sys.version.split()[0]})", flush=True)
        if not (stage.venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(stage.venv)], check=True)

        t = time.monotonic()
        log = work / f"block_{first.line:04d}.log"
        status = stage.bash(install, 1800, log)
        results.append((f"README.md:{first.line} `{install}`", "ok" if status == 0 else f"FAILED ({status})",
                        time.monotonic() - t))
        if status != 0:
            failures.append((results[-1][0], log))
        else:
            t = time.monotonic()
            app = stage.spawn(["bash", "-c", stage.remap(serve)], work / "app.log")
            url = stage.remap(APP_URL)
            ok = wait_for(url, app, 300)
            results.append((f"README.md:{first.line} `{serve}` answers at {url}", "ok" if ok else "FAILED",
                            time.monotonic() - t))
            if not ok:
                failures.append((results[-1][0], work / "app.log"))
        for b in rest:
            if failures and not args.keep_going:
                break
            label = f"README.md:{b.line} {b.lang}: {b.code.strip().splitlines()[0][:90]}"
            if b.skip or b.line < args.from_line:
                results.append((label, f"skipped ({b.skip or '--from-line'})", 0.0))
                continue
            t = time.monotonic()
            log = work / f"block_{b.line:04d}.log"
            status = (stage.bash if b.lang == "bash" else stage.python)(b.code, b.timeout, log)
            missing = [c for c in b.creates if not (stage.checkout / c).exists()] if status == 0 else []
            verdict = "ok" if status == 0 and not missing else (
                f"FAILED (exit status {status})" if status else f"FAILED (not created: {', '.join(missing)})")
            results.append((label, verdict, time.monotonic() - t))
            if verdict != "ok":
                failures.append((label, log))
    finally:
        stage.stop()
    print()
    for label, verdict, seconds in results:
        word, _, why = verdict.partition(" (")
        print(f"{word:>8s} {seconds:7.1f} s  {label}" + (f"  [{why[:-1]}]" if why else ""))
    print(f"README stage: {time.monotonic() - t_start:.0f} s")
    for label, log in failures:
        print(f"\nREADME stage FAILED at {label}; its output (last lines):\n{tail(log)}", file=sys.stderr)
    if args.keep:
        print(f"kept: {work}")
    elif failures:  # keep the logs and scripts, not the (large) environment
        if args.venv is None:
            shutil.rmtree(stage.venv, ignore_errors=True)
        shutil.rmtree(stage.checkout, ignore_errors=True)
        print(f"logs and block scripts kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
