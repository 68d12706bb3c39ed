"""Helpers shared by the benches; not benches themselves (each ``bench/*.py`` is one).

The benches run as scripts (``python bench/<name>.py``), so ``bench/`` is the first entry
of ``sys.path`` and they import these as ``from support.<module> import ...``.
"""
