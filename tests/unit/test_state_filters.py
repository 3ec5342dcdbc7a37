import pytest

from ember._core.state_filters import check, select

ROWS = [
    {"name": "f", "state": "RUNNING", "attempt": 0, "ok": True},
    {"name": "g", "state": "FINISHED", "attempt": 2, "ok": False},
    {"name": "f", "state": "FAILED", "attempt": 1, "ok": False},
]


def test_equality_reads_text_as_the_row_type_and_ignores_case():
    assert select(ROWS, check([("state", "=", "running")]), 10) == ([ROWS[0]], 1)
    assert select(ROWS, check([("attempt", "=", "2")]), 10) == ([ROWS[1]], 1)
    assert select(ROWS, check([("ok", "=", "true")]), 10) == ([ROWS[0]], 1)
    assert select(ROWS, check([("name", "!=", "f")]), 10) == ([ROWS[1]], 1)


def test_filters_combine_and_the_total_counts_rows_past_the_limit():
    rows, total = select(ROWS, check([("name", "=", "f"), ("attempt", ">=", 0)]), 1)
    assert rows == [ROWS[0]] and total == 2
    assert select(ROWS, [], 0) == ([], 3)


def test_an_order_predicate_on_a_missing_or_other_typed_key_matches_nothing():
    assert select(ROWS, check([("missing", "<", 3)]), 10) == ([], 0)
    assert select(ROWS, check([("state", "<", 3)]), 10) == ([], 0)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([("state", "~", "x")], "unsupported predicate '~'"),
        (["state=RUNNING"], "a filter is a \\(key, predicate, value\\) tuple"),
        ([("state", "=")], "a filter is a"),
    ],
)
def test_a_bad_filter_is_refused_by_name(bad, match):
    with pytest.raises(ValueError, match=match):
        check(bad)
