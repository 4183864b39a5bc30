"""Fixtures of the brain-space tests; the input writers live in ``spaces_helpers`` (a unique module name:
several folders of this suite have a conftest.py, so ``import conftest`` would be ambiguous)."""

from spaces_helpers import plant_model  # noqa: F401  (a fixture)
