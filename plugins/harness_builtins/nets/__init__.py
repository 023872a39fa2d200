"""The torch side of each built-in problem: networks, data and what a cell builds; imported
when a cell is built. Each problem module (``harness_builtins.mlp``...) says what its
problems are (parameters, metrics, targets) without importing torch, so that loading the
plugins (``harness list``, ``harness report``) does not import it; its ``build`` imports the
module of the same name here (``harness_builtins.nets.mlp``...) and delegates to it.
"""
