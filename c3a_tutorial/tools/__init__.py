"""Repository tooling for instructors and maintainers: nbgrader course set-up (``assignments``) and the
notebooks' Colab badges and set-up cells (``colab``)."""
