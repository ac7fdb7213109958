"""Optional dependencies: import them here so that a missing one fails with one line naming the extra.

The extras are declared in pyproject.toml ([project.optional-dependencies]):

| extra       | modules                              | what needs them                               |
| ----------- | ------------------------------------ | --------------------------------------------- |
| `app`       | gradio                               | app.py, the Space                             |
| `datasets`  | datasets                             | training on a Hugging Face dataset            |
| `onnx`      | onnxruntime, onnx, onnxscript        | the ONNX Runtime backend and ONNX export      |
| `benchmark` | skimage (scikit-image), scipy        | the photo2sketch data builder and benchmark   |
| `dev`       | all of the above plus the test tools | the test suite                                |

Usage::

    from cyclegan.optional import require
    datasets = require("datasets", "datasets", "Training on a Hugging Face dataset")

tests/test_imports.py checks that every third-party module the package imports is either a declared
runtime dependency or imported through `require` (or inside a `try: ... except ImportError` that raises
`MissingExtra`).
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require", "message"]


class MissingExtra(ImportError):
    """An optional dependency is not installed. `str(err)` is one line naming the extra to install."""

    def __init__(self, module_name: str, extra: str, feature: str):
        self.module_name, self.extra, self.feature = module_name, extra, feature
        super().__init__(message(extra, feature), name=module_name)


def message(extra: str, feature: str) -> str:
    """The one-line message: `<feature> needs the '<extra>' extra: pip install "cyclegan[<extra>]"`."""
    return f"{feature} needs the '{extra}' extra: pip install \"cyclegan[{extra}]\""


def require(module_name: str, extra: str, feature: str) -> ModuleType:
    """Import `module_name` (e.g. "onnxruntime", "skimage.filters") and return the module.

    Args:
        module_name: the importable name, dotted names allowed.
        extra: the pyproject extra that installs it ("app", "datasets", "onnx", "benchmark", "dev").
        feature: what needs it, as the start of a sentence ("The ONNX Runtime backend").
    Raises:
        MissingExtra (an ImportError) with one line when the module, or a module it imports, is missing.
        Other import-time errors of an installed module propagate unchanged.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise MissingExtra(module_name, extra, feature) from err
