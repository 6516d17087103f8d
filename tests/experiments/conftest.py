"""Fixtures shared by the experiments' tests: a tiny random BERT on disk and the offline data set."""

import pytest

from c3a_tutorial.experiments.data import load_dataset

from ..tiny_bert import make_tiny_bert


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def stdlib():
    return load_dataset("stdlib", seed=0)
