"""``python -m c3a_tutorial.demo``: forwards to ``c3a_tutorial.course.demo`` (code and docs there)."""

from .course.demo import main

if __name__ == "__main__":
    main()
