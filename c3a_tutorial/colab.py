"""``python -m c3a_tutorial.colab``: forwards to ``c3a_tutorial.tools.colab`` (code and docs there)."""

from .tools.colab import main

if __name__ == "__main__":
    main()
