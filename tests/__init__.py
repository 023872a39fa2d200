"""The test suite: ``pytest`` runs all of it; ``pytest -m "not slow"`` the fast tier."""
