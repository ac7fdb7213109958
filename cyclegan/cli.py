"""What every `python -m cyclegan.<tool>` shares: messages as one sentence, and Ctrl-C without a traceback.

Imports nothing heavy (no torch), so a tool can call `quiet_interrupts()` before it imports torch.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

INTERRUPTED = 130   # the shell's status for a process stopped by Ctrl-C (128 + SIGINT)


def sentence(text: object) -> str:
    """`text` as one line that ends in exactly one full stop: whitespace runs (newlines included) become one
    space, and trailing full stops and spaces are replaced by a single full stop."""
    line = " ".join(str(text).split()).rstrip(". ")
    return f"{line}." if line else ""


def fail(message: object, status: int, prefix: str = "error: ") -> int:
    """Prints `message` on stderr as one sentence (after `prefix`) and returns `status`, for `return fail(...)`."""
    print(f"{prefix}{sentence(message)}", file=sys.stderr)
    return status


def out_folder_problem(out: str, option: str = "--out") -> str | None:
    """Why the folder `out` cannot receive outputs (empty, a file, under a file, not writable), checked before
    the model loads; None when it can (missing folders are created when the first output is written)."""
    if not out.strip():
        return f"{option} is empty: name an output folder (it is created if missing)"
    path = Path(out)
    if path.exists() and not path.is_dir():
        return f"{option} {out} is a file, not a folder: name a folder (it is created if missing)"
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{option} {out}: {parent} is a file, so the folder cannot be created there"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{option} {out}: cannot write in {parent} (no permission, or a read-only file system)"
    return None


def quiet_interrupts(tool: str) -> None:
    """Ctrl-C anywhere in this process (even while torch is being imported or a model loads) ends it with one
    line on stderr instead of a traceback; the exit status stays the signal's (130 in a shell). Other uncaught
    exceptions still print their traceback (they are bugs to report). Call it first thing in a `__main__`."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            print(f"\n{tool}: interrupted (Ctrl-C) before it finished.", file=sys.stderr)
        else:
            previous(kind, value, tb)

    sys.excepthook = hook
