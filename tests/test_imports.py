"""Every import is declared: the package, app.py and train/run.py import only what pyproject.toml declares.

The rules (read from the source with `ast`, mapped to distributions with importlib.metadata):
- A third-party module imported by the package (cyclegan/), train/run.py or app.py comes from a distribution
  named in pyproject.toml's `dependencies` itself (not only pulled in by another one: a dependency of a
  dependency can vanish in its next release). app.py may also use the `app` extra, which requirements.txt
  installs for the Space.
- Anything else is optional: it is imported through `cyclegan.optional.require(module, extra, feature)`, whose
  extra must declare the module's distribution, or inside `try: ... except ImportError` (a fallback, or a
  one-line message naming the extra).
- tests/, bench/ and scripts/ import only what the `dev` extra installs (runtime plus every extra).
- requirements.txt (what a Hugging Face Space installs) is exactly the runtime dependencies plus the `app`
  extra, and requirements-dev.txt exactly the `dev` extra: they cannot drift from pyproject.toml.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FILES = sorted((ROOT / "cyclegan").rglob("*.py")) + [ROOT / "train" / "run.py", ROOT / "app.py"]
TOOL_FILES = sorted(p for d in ("tests", "bench", "scripts") for p in (ROOT / d).rglob("*.py"))
FILE_EXTRAS = {"app.py": {"app"}}  # the app is what the `app` extra is for (requirements.txt = runtime + app)

# Known offenders, each with the helper that owns the file and is fixing it. The test fails when an entry no
# longer occurs, so this list can only shrink.
KNOWN: dict[tuple[str, str], str] = {}


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return canonical(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec).group(1))


def requirement_key(spec: str) -> str:
    """'Huggingface_Hub >= 1.0' -> 'huggingface-hub>=1.0' (name normalised, spaces dropped)."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec).group(1)
    return canonical(name) + re.sub(r"\s+", "", spec.split("#")[0].strip()[len(name):])


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def expand_extras(project: dict) -> dict[str, list[str]]:
    """extra -> requirement strings, with self-references such as "cyclegan[app,onnx]" expanded."""
    raw = project.get("optional-dependencies", {})

    def expand(extra: str, seen: frozenset) -> list[str]:
        out = []
        for spec in raw[extra]:
            m = re.fullmatch(r"\s*cyclegan\s*\[([^\]]+)\]\s*", spec)
            if m:
                for sub in m.group(1).split(","):
                    if sub.strip() not in seen:
                        out += expand(sub.strip(), seen | {sub.strip()})
            else:
                out.append(spec)
        return out

    return {extra: expand(extra, frozenset({extra})) for extra in raw}


def read_requirements(path: Path) -> list[str]:
    """Requirement strings of a requirements file, following `-r other.txt`."""
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            out += read_requirements(path.parent / line.split(None, 1)[1])
        else:
            assert not line.startswith("-"), f"{path.name}: only package names and -r are expected, got {line!r}"
            out.append(line)
    return out


# -- walking the imports ---------------------------------------------------------------------------------------
def local_names() -> set[str]:
    """Top-level names that are this repository's own modules (cyclegan, conftest, hub_server, baseline, ...)."""
    names = {p.stem for p in ROOT.rglob("*.py") if ".venv" not in p.parts}
    return names | {p.name for p in ROOT.iterdir() if p.is_dir()}


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in {"ImportError", "ModuleNotFoundError", "Exception"}
               for t in types)


def imports(path: Path) -> list[tuple[str, int, str]]:
    """(top-level module, line, how) for every absolute import in a file; how is "plain", "guarded" (inside a
    try whose handler catches ImportError) or "require:<extra>" (cyclegan.optional.require)."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Try):
            inner = guarded or any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, inner)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, guarded)
            return
        how = "guarded" if guarded else "plain"
        if isinstance(node, ast.Import):
            out.extend((alias.name.split(".")[0], node.lineno, how) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module.split(".")[0], node.lineno, how))
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "require"
              and len(node.args) >= 2 and all(isinstance(a, ast.Constant) for a in node.args[:2])):
            out.append((node.args[0].value.split(".")[0], node.lineno, f"require:{node.args[1].value}"))
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return out


def problems(runtime: list[str], extras: dict[str, list[str]], files: list[Path], allowed_extra_for_all: bool = False
             ) -> list[str]:
    """One line per import that the declarations do not cover (empty: all declared)."""
    dists = importlib.metadata.packages_distributions()
    runtime_names = {requirement_name(s) for s in runtime}
    extra_names = {e: {requirement_name(s) for s in specs} for e, specs in extras.items()}
    everything = runtime_names.union(*extra_names.values())
    local, stdlib = local_names(), set(sys.stdlib_module_names) | {"__future__"}
    out = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        allowed = everything if allowed_extra_for_all else runtime_names.union(
            *(extra_names.get(e, set()) for e in FILE_EXTRAS.get(rel, ())))
        for module, line, how in imports(path):
            if module in stdlib or module in local:
                continue
            provided = {canonical(d) for d in dists.get(module, [])}
            where = f"{rel}:{line}: {module}"
            if how.startswith("require:"):
                extra = how.split(":", 1)[1]
                if extra not in extra_names:
                    out.append(f"{where}: require(..., {extra!r}, ...) names an extra pyproject.toml does not have")
                elif provided and not provided & extra_names[extra]:
                    out.append(f"{where} (distribution {sorted(provided)}) is not in the {extra!r} extra")
                elif not provided:
                    out.append(f"{where} is not installed here, so its distribution is unknown: install the dev extra")
            elif how == "guarded" or provided & allowed:
                continue
            elif not provided:
                out.append(f"{where} is not installed and not guarded (cyclegan.optional.require, or try/except "
                           f"ImportError)")
            else:
                out.append(f"{where} comes from {sorted(provided)}, which is not declared"
                           + ("" if allowed_extra_for_all else " in pyproject.toml's dependencies; declare it, or "
                              "import it with cyclegan.optional.require(module, extra, feature)"))
    return out


# -- the tests -------------------------------------------------------------------------------------------------
def test_package_app_and_train_import_only_declared_dependencies():
    project = pyproject()
    found = problems(project["dependencies"], expand_extras(project), PACKAGE_FILES)
    known = {f"{file}:{module}" for file, module in KNOWN}
    unknown = [p for p in found if f"{p.split(':')[0]}:{p.split(': ')[1].split()[0]}" not in known]
    assert not unknown, "undeclared imports:\n" + "\n".join(unknown)
    stale = [f"{f} imports {m}" for f, m in KNOWN if not any(p.startswith(f + ":") and f": {m} " in p for p in found)]
    assert not stale, "fixed, so remove from KNOWN in tests/test_imports.py: " + ", ".join(stale)


def test_tests_and_benchmarks_import_only_what_the_dev_extra_installs():
    project = pyproject()
    extras = expand_extras(project)
    found = problems(project["dependencies"], extras, TOOL_FILES, allowed_extra_for_all=True)
    assert not found, "\n".join(found)


def test_the_check_catches_a_dependency_removed_from_the_declaration():
    """matplotlib draws the training run's pictures (cyclegan/plots.py): without it declared, the check fails."""
    project = pyproject()
    runtime = [s for s in project["dependencies"] if requirement_name(s) != "matplotlib"]
    assert len(runtime) == len(project["dependencies"]) - 1
    found = problems(runtime, expand_extras(project), PACKAGE_FILES)
    assert any(p.startswith("cyclegan/plots.py:") and ": matplotlib " in p for p in found), found


def test_an_unguarded_optional_import_is_caught(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import datasets\n"                                             # optional, unguarded: caught
                     "try:\n    import onnxruntime\nexcept ImportError:\n    onnxruntime = None\n"  # guarded
                     "from cyclegan.optional import require\n"
                     "skimage = require('skimage', 'benchmark', 'The photo2sketch task')\n"  # the right extra
                     "scipy = require('scipy', 'app', 'The photo2sketch task')\n")          # the wrong extra: caught
    project = pyproject()
    found = problems(project["dependencies"], expand_extras(project), [probe])
    assert [p.split(": ")[1].split()[0] for p in found] == ["datasets", "scipy"], found


def test_requirements_txt_is_the_runtime_dependencies_plus_the_app_extra():
    project = pyproject()
    extras = expand_extras(project)
    expected = sorted(requirement_key(s) for s in project["dependencies"] + extras["app"])
    assert sorted(requirement_key(s) for s in read_requirements(ROOT / "requirements.txt")) == expected


def test_requirements_dev_txt_is_the_dev_extra():
    project = pyproject()
    extras = expand_extras(project)
    expected = sorted(set(requirement_key(s) for s in project["dependencies"] + extras["dev"]))
    assert sorted(set(requirement_key(s) for s in read_requirements(ROOT / "requirements-dev.txt"))) == expected
    assert set(extras) >= {"app", "datasets", "onnx", "benchmark", "dev"}
    assert {requirement_name(s) for s in extras["dev"]} >= set().union(
        *({requirement_name(s) for s in extras[e]} for e in ("app", "datasets", "onnx", "benchmark")))


@pytest.mark.parametrize("extra, feature", [("onnx", "The ONNX Runtime backend")])
def test_a_missing_optional_module_fails_with_one_line_naming_the_extra(extra, feature):
    from cyclegan.optional import MissingExtra, require
    with pytest.raises(MissingExtra) as err:
        require("no_such_module_for_cyclegan_tests", extra, feature)
    assert str(err.value) == f"{feature} needs the '{extra}' extra: pip install \"cyclegan[{extra}]\""
    assert isinstance(err.value, ImportError) and "\n" not in str(err.value)


def test_the_app_install_brings_its_default_engine():
    # app.py's CYCLEGAN_BACKEND=auto runs ONNX Runtime only where it is installed: the app extra (and so
    # requirements.txt, what a Space installs) must bring it, and onnx for the export (README "Backends").
    assert {"onnxruntime", "onnx"} <= {requirement_name(r) for r in expand_extras(pyproject())["app"]}
