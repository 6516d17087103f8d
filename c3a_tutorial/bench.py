"""``python -m c3a_tutorial.bench``: forwards to ``c3a_tutorial.experiments.bench`` (code and docs there)."""

from .experiments.bench import main

if __name__ == "__main__":
    main()
