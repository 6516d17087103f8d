"""``python -m c3a_tutorial.finetune``: forwards to ``c3a_tutorial.experiments.finetune`` (code and docs there)."""

from .experiments.finetune import main

if __name__ == "__main__":
    main()
