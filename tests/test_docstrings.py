"""The ``>>>`` examples in raypriv's docstrings run and give what they show."""
import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import raypriv



def _has_examples(info) -> bool:
    """Whether the module's source holds a ``>>>`` example (read as text: nothing is imported)."""
    spec = importlib.util.find_spec(info.name)
    return bool(spec and spec.origin and spec.origin.endswith(".py") and ">>> " in open(spec.origin).read())


MODULES = sorted(m.name for m in pkgutil.walk_packages(raypriv.__path__, "raypriv.") if _has_examples(m))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} shows '>>> ' examples that doctest does not find"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
