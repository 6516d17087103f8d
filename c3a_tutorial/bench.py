"""``python -m c3a_tutorial.bench``: forwards to ``c3a_tutorial.experiments.bench_cli`` (code and docs there)."""

from .experiments.bench_cli import main

if __name__ == "__main__":
    main()
