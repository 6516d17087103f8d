"""The offline data set: real docstrings, real labels, deterministic, balanced enough, no leakage."""

import builtins

import pytest

from c3a_tutorial.experiments import data as data_module
from c3a_tutorial.experiments.data import STDLIB_PACKAGES, build_stdlib_dataset, collect_stdlib_docstrings, load_dataset


@pytest.fixture(scope="module")
def stdlib(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # a fresh cache: the first load builds it, the next ones read it
        mp.setenv("C3A_DATA_DIR", str(tmp_path_factory.mktemp("cache")))
        yield load_dataset("stdlib", seed=0)


def test_every_package_is_a_class_with_examples_in_every_split(stdlib):
    assert stdlib.labels == list(STDLIB_PACKAGES)
    for split in ("train", "validation", "test"):
        counts = stdlib.class_counts(split)
        assert all(n > 0 for n in counts.values()), (split, counts)
        assert all(0 <= label < stdlib.num_labels for _, label in getattr(stdlib, split))
    assert len(stdlib.train) > 800 and len(stdlib.test) > 150


def test_split_fractions_are_70_15_15(stdlib):
    n = len(stdlib.train) + len(stdlib.validation) + len(stdlib.test)
    assert abs(len(stdlib.train) / n - 0.70) < 0.02
    assert abs(len(stdlib.validation) / n - 0.15) < 0.02


def test_balanced_enough(stdlib):
    counts = stdlib.class_counts("train").values()
    assert max(counts) <= 2 * min(counts)
    # The majority-class baseline is low, so accuracy well above it means the model learned something.
    assert stdlib.majority_baseline("test") < 0.2
    assert stdlib.majority_baseline("test") == pytest.approx(
        max(stdlib.class_counts("test").values()) / len(stdlib.test), abs=0.05
    )


def test_no_text_is_in_two_splits_or_twice_in_one(stdlib):
    texts = {split: [t for t, _ in getattr(stdlib, split)] for split in ("train", "validation", "test")}
    for split, items in texts.items():
        assert len(items) == len(set(items)), f"duplicates inside {split}"
    assert not set(texts["train"]) & set(texts["validation"])
    assert not set(texts["train"]) & set(texts["test"])
    assert not set(texts["validation"]) & set(texts["test"])


def test_texts_are_real_docstrings(stdlib):
    text, label = stdlib.train[0]
    assert isinstance(text, str) and len(text.split()) >= data_module.MIN_WORDS
    assert "\n" not in text and "  " not in text  # whitespace-normalised


def test_deterministic_and_the_cache_returns_the_same_splits(stdlib):
    rebuilt = build_stdlib_dataset(seed=0)
    assert rebuilt.train == stdlib.train and rebuilt.validation == stdlib.validation and rebuilt.test == stdlib.test
    cached = load_dataset("stdlib", seed=0)  # second call reads the cache file
    assert cached.train == stdlib.train and cached.labels == stdlib.labels
    other = build_stdlib_dataset(seed=1)
    assert other.train != stdlib.train  # the seed matters


def test_collect_skips_tests_dedupes_and_drops_ambiguous_texts(tmp_path):
    words = "one two three four five six"
    (tmp_path / "alpha" / "tests").mkdir(parents=True)
    (tmp_path / "beta").mkdir()
    (tmp_path / "alpha" / "a.py").write_text(
        f'"""Alpha module {words}."""\n'
        f'def f():\n    """Shared text {words}."""\n'
        f'def g():\n    """Alpha only {words}."""\n'
        f'def h():\n    """Alpha only {words}."""\n'
        'def short():\n    """Too short."""\n'
    )
    (tmp_path / "alpha" / "tests" / "t.py").write_text(f'"""Test prose {words}."""\n')
    (tmp_path / "beta" / "b.py").write_text(f'class B:\n    """Shared   text\n    {words}."""\n')
    found = collect_stdlib_docstrings(packages=("alpha", "beta"), root=tmp_path)
    assert found == {"alpha": [f"Alpha module {words}.", f"Alpha only {words}."], "beta": []}


def test_missing_package_sources_give_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no source folder"):
        collect_stdlib_docstrings(packages=("asyncio",), root=tmp_path)


def test_unknown_dataset_and_offline_sst2_errors(monkeypatch):
    with pytest.raises(ValueError, match="Unknown dataset 'imdb'.*stdlib"):
        load_dataset("imdb")
    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(ImportError, match="pip install datasets.*--dataset stdlib"):
        load_dataset("sst2")
