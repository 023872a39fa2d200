"""The built-in plugins: the tutorial's problems and optimizers.

Each module is a plugin announced through the ``harness`` entry-point group in
the project's ``pyproject.toml``, exactly as a third-party package would be.
"""
