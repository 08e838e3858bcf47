"""A hypothesis strategy for JSON-like values, shared by the property tests that feed untrusted
documents (Lambda events, sink payloads) to the code that parses them."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["json_values"]


def json_values(
    *,
    int_bound: int,
    text_size: int,
    max_leaves: int,
    extra_scalars: st.SearchStrategy[Any] | None = None,
) -> st.SearchStrategy[Any]:
    """Nested lists and objects of scalars: None, booleans, integers within ``int_bound`` (past
    int64, on purpose), any float (NaN and infinities too), text up to ``text_size``, and
    ``extra_scalars`` (values a test wants often, such as numeric strings)."""
    scalars = [
        st.none(),
        st.booleans(),
        st.integers(min_value=-int_bound, max_value=int_bound),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=text_size),
    ]
    if extra_scalars is not None:
        scalars.append(extra_scalars)
    return st.recursive(
        st.one_of(*scalars),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )
