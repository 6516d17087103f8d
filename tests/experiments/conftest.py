"""Fixtures shared by the experiments' tests: a tiny random BERT on disk, the offline data set, and a spy that keeps
every FinetuneResult the finetune command line produces."""

import pytest

from c3a_tutorial.experiments import finetune as cli
from c3a_tutorial.experiments import train
from c3a_tutorial.experiments.data import load_dataset

from ..tiny_bert import make_tiny_bert


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def stdlib():
    return load_dataset("stdlib", seed=0)


@pytest.fixture
def finetune_results(monkeypatch) -> list:
    """Every FinetuneResult that the finetune command line's main produces, in order."""
    results = []

    def spy(*args, **kwargs):
        results.append(train.finetune(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(cli, "finetune", spy)
    return results
