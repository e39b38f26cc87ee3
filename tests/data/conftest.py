"""Fixtures for the data-layer tests."""
import pytest

from tests.data.data_helpers import write_cifar


@pytest.fixture
def cifar_dir(tmp_path):
    files = write_cifar(tmp_path / "cifar")
    return tmp_path / "cifar", files
