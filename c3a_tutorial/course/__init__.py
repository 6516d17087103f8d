"""What the notebooks use to teach: plots and widgets (``viz``), the expressivity fits (``fitting``),
the exercise checkers (``checks``, one module per notebook) and the matrix-fitting tour (``demo``).

Nothing here is needed to *use* C3A; it all builds on ``c3a_tutorial.c3a``.
"""
