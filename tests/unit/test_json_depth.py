"""The request-limit middleware's nesting check agrees with a parser on every JSON document,
whatever brackets, quotes and escapes its strings hold."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.app.server.limits import json_depth

TRICKY_TEXT = st.text(alphabet='[]{}"\\:,ab \n\t\u00e9\u2603', max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
    max_leaves=30,
)


def parsed_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(parsed_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(parsed_depth, value), default=0)
    return 0


@given(JSON, st.booleans())
def test_depth_is_the_parsers_nesting(document: Any, ascii_only: bool) -> None:
    body = json.dumps(document, ensure_ascii=ascii_only).encode()
    assert json_depth(body) == parsed_depth(json.loads(body))
