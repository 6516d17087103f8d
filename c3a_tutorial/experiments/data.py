"""The fine-tuning data: real human-written text with real labels, built offline from what Python ships.

The default task, ``"stdlib"``, is *which standard-library package does this docstring come from?*
Every docstring of a module, class or function in eight packages of the Python standard library
(asyncio, email, http, importlib, logging, multiprocessing, unittest, xml) is one example, labelled
by its package. The source files are parsed with ``ast`` (nothing is imported), so every machine with
Python ≥ 3.10 can build it without a network. Docstrings shorter than ``MIN_WORDS`` words are dropped,
duplicates are kept once (a text found in two packages is dropped), each class is capped at
``MAX_PER_CLASS`` examples (a seeded choice), and a seeded stratified split makes train / validation /
test. The texts differ a little between Python versions, so the cache file names the version.

``"sst2"`` (GLUE SST-2, the paper's benchmark) comes from the Hugging Face hub through ``datasets``,
which needs the network and ``pip install datasets``.
"""

from __future__ import annotations

import ast
import json
import os
import random
import sys
import sysconfig
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

STDLIB_PACKAGES = ("asyncio", "email", "http", "importlib", "logging", "multiprocessing", "unittest", "xml")
MIN_WORDS = 5
MAX_PER_CLASS = 200
MAX_CHARS = 1000  # the tokenizer truncates long docstrings anyway; this keeps the cache small
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)  # train, validation, test
DATASETS = ("stdlib", "sst2")
_CACHE_VERSION = 1


def majority_baseline(train, examples) -> float:
    """Accuracy on ``examples`` of always answering the most frequent label of ``train`` (ties: lowest)."""
    counts = Counter(label for _, label in train)
    majority = max(sorted(counts), key=lambda k: counts[k])
    return sum(label == majority for _, label in examples) / len(examples)


@dataclass
class TextDataset:
    """Three splits of ``(text, label)`` pairs and the label names; ``label`` indexes ``labels``."""

    name: str
    labels: list[str]
    train: list[tuple[str, int]]
    validation: list[tuple[str, int]]
    test: list[tuple[str, int]]
    info: dict = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def class_counts(self, split: str = "train") -> dict[str, int]:
        counts = Counter(label for _, label in getattr(self, split))
        return {name: counts.get(i, 0) for i, name in enumerate(self.labels)}

    def majority_baseline(self, split: str = "test") -> float:
        """Accuracy of always answering the most frequent *training* class, measured on ``split``."""
        return majority_baseline(self.train, getattr(self, split))

    def token_lengths(self, tokenizer, split: str = "train") -> list[int]:
        """Tokens per example of ``split`` as ``tokenizer`` counts them (special tokens included), untruncated:
        what a ``max_length`` cuts off."""
        return [len(tokenizer(text, truncation=False)["input_ids"]) for text, _ in getattr(self, split)]

    def summary(self) -> str:
        lines = [
            f"{self.name}: {len(self.labels)} classes, "
            f"train {len(self.train)} / validation {len(self.validation)} / test {len(self.test)} examples"
        ]
        counts = self.class_counts("train")
        lines.append("train examples per class: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        lines.append(f"majority-class baseline (test accuracy): {self.majority_baseline('test'):.3f}")
        return "\n".join(lines)


def cache_dir() -> Path:
    """``$C3A_DATA_DIR``, else ``data/cache`` of a source checkout, else ``~/.cache/c3a_tutorial``."""
    if os.environ.get("C3A_DATA_DIR"):
        return Path(os.environ["C3A_DATA_DIR"])
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists() and (checkout / "data").is_dir():
        return checkout / "data" / "cache"
    return Path.home() / ".cache" / "c3a_tutorial"


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _docstrings(path: Path) -> list[str]:
    """Docstrings of the module and of every class and function in one source file, whitespace-normalised."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return []
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                text = " ".join(doc.split())
                if len(text.split()) >= MIN_WORDS:
                    texts.append(text[:MAX_CHARS])
    return texts


def collect_stdlib_docstrings(packages=STDLIB_PACKAGES, root: Path | None = None) -> dict[str, list[str]]:
    """Every usable docstring of each package, in a fixed order (sorted files, then source order).

    A package's own tests (``test``/``tests`` folders) are skipped: they are not the package's prose.
    """
    root = _stdlib_root() if root is None else Path(root)
    found: dict[str, list[str]] = {}
    for package in packages:
        folder = root / package
        if not folder.is_dir():
            raise FileNotFoundError(
                f"The standard-library package {package!r} has no source folder at {folder}: this Python "
                "installation ships without its .py sources, so the offline data set cannot be built here."
            )
        texts = []
        for path in sorted(folder.rglob("*.py")):
            if {"test", "tests"} & set(path.relative_to(folder).parts[:-1]):
                continue
            texts.extend(_docstrings(path))
        found[package] = texts
    # Keep a text once; drop it entirely if two packages share it (its label would be ambiguous).
    owners: dict[str, set[str]] = {}
    for package, texts in found.items():
        for text in texts:
            owners.setdefault(text, set()).add(package)
    unique = {}
    for package, texts in found.items():
        seen: set[str] = set()
        unique[package] = [t for t in texts if len(owners[t]) == 1 and not (t in seen or seen.add(t))]
    return unique


def _stratified_split(by_label: dict[int, list[str]], seed: int, fractions=SPLIT_FRACTIONS):
    rng = random.Random(seed)
    splits: tuple[list, list, list] = ([], [], [])
    for label in sorted(by_label):
        texts = list(by_label[label])
        rng.shuffle(texts)
        n_val = round(len(texts) * fractions[1])
        n_test = round(len(texts) * fractions[2])
        n_train = len(texts) - n_val - n_test
        for split, chunk in zip(
            splits, (texts[:n_train], texts[n_train : n_train + n_val], texts[n_train + n_val :]), strict=True
        ):
            split.extend((text, label) for text in chunk)
    for split in splits:
        rng.shuffle(split)
    return splits


def build_stdlib_dataset(seed: int = 0, max_per_class: int = MAX_PER_CLASS, root: Path | None = None) -> TextDataset:
    """Build the default task from the standard library's sources (no cache; see ``load_dataset``)."""
    texts = collect_stdlib_docstrings(root=root)
    rng = random.Random(seed)
    by_label = {}
    for label, package in enumerate(STDLIB_PACKAGES):
        chosen = list(texts[package])
        if len(chosen) > max_per_class:
            chosen = rng.sample(chosen, max_per_class)
        by_label[label] = chosen
    train, validation, test = _stratified_split(by_label, seed)
    info = {
        "source": "docstrings of the Python standard library, labelled by top-level package",
        "python": ".".join(map(str, sys.version_info[:3])),
        "seed": seed,
        "max_per_class": max_per_class,
        "min_words": MIN_WORDS,
    }
    return TextDataset("stdlib", list(STDLIB_PACKAGES), train, validation, test, info)


def _cache_path(seed: int, max_per_class: int) -> Path:
    version = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    return cache_dir() / f"stdlib_docstrings-v{_CACHE_VERSION}-{version}-seed{seed}-max{max_per_class}.json"


def _load_sst2(seed: int) -> TextDataset:
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            "--dataset sst2 needs the Hugging Face `datasets` package and a network connection: "
            "pip install datasets. Offline, use the default --dataset stdlib."
        ) from err
    try:
        glue = datasets.load_dataset("glue", "sst2")
    except Exception as err:  # noqa: BLE001 - a failed download shows up as many exception types
        raise RuntimeError(
            f"Could not download GLUE SST-2 ({type(err).__name__}: {err}). It needs the network; "
            "offline, use the default --dataset stdlib."
        ) from err
    pairs = [(row["sentence"], int(row["label"])) for row in glue["train"]]
    random.Random(seed).shuffle(pairs)
    n_val = len(glue["validation"])
    # GLUE's test labels are hidden: hold out part of train for model selection, test on GLUE validation.
    validation, train = pairs[:n_val], pairs[n_val:]
    test = [(row["sentence"], int(row["label"])) for row in glue["validation"]]
    info = {"source": "GLUE SST-2 (train split, minus a held-out validation; test = GLUE validation)", "seed": seed}
    return TextDataset("sst2", ["negative", "positive"], train, validation, test, info)


def load_dataset(name: str = "stdlib", seed: int = 0, max_per_class: int = MAX_PER_CLASS) -> TextDataset:
    """The named data set: ``"stdlib"`` (offline, cached under ``cache_dir()``) or ``"sst2"`` (online)."""
    if name == "sst2":
        return _load_sst2(seed)
    if name != "stdlib":
        raise ValueError(f"Unknown dataset {name!r}; choose one of {list(DATASETS)}.")
    path = _cache_path(seed, max_per_class)
    if path.exists():
        blob = json.loads(path.read_text(encoding="utf-8"))
        splits = {k: [(t, int(y)) for t, y in blob[k]] for k in ("train", "validation", "test")}
        return TextDataset(blob["name"], blob["labels"], info=blob["info"], **splits)
    dataset = build_stdlib_dataset(seed=seed, max_per_class=max_per_class)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {
            "name": dataset.name,
            "labels": dataset.labels,
            "info": dataset.info,
            "train": dataset.train,
            "validation": dataset.validation,
            "test": dataset.test,
        }
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(blob), encoding="utf-8")
        os.replace(tmp, path)  # atomic: two processes (torchrun) may build it at once
    except OSError:
        pass  # a read-only location only costs a rebuild next time
    return dataset
