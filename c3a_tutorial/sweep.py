"""``python -m c3a_tutorial.sweep``: forwards to ``c3a_tutorial.experiments.sweep`` (code and docs there)."""

from .experiments.sweep import main

if __name__ == "__main__":
    main()
