"""The instructor's tests (they hold right answers to the assignments, so they stay out of the students' copy with
the rest of ``instructor/``): the suite's guard, that no test may open a network connection, applies here too."""

import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location(
    "suite_conftest", pathlib.Path(__file__).resolve().parents[2] / "tests" / "conftest.py")
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)
_no_network = _suite._no_network
