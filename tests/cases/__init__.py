import pytest

# Let pytest explain failed asserts in the shared helpers, as it does in test modules.
pytest.register_assert_rewrite("tests.cases.steps")
