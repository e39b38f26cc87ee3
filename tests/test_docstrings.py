"""The ``>>>`` examples in raypriv's docstrings run and give what they show."""
import doctest
import importlib
import pkgutil

import pytest

import raypriv

MODULES = sorted(m.name for m in pkgutil.walk_packages(raypriv.__path__, "raypriv."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
