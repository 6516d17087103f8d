"""``python -m c3a_tutorial.sweep``: forwards to ``c3a_tutorial.experiments.sweep_cli`` (code and docs there)."""

from .experiments.sweep_cli import main

if __name__ == "__main__":
    main()
