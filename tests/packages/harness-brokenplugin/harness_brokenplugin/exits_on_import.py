"""Calls sys.exit while being imported, as a dependency that needs missing hardware may."""

import sys

sys.exit("this plugin needs a GPU")
