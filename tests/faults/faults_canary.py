"""A module no result record may make a client import: importing it is what the test looks for.

tests/faults/test_fuzz_results.py names it as the module of a stored exception; a client
that rebuilds the exception by importing the module named in the record runs this file.
"""

from __future__ import annotations

IMPORTED = True
