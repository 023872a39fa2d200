"""Deliberately broken plugins for the test suite."""
