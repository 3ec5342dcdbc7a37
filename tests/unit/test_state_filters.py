import pytest

from ember._core.state_filters import check, check_limit, needs_detail, select

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


@pytest.mark.parametrize("value", [object(), [1], {"a": 1}, None, 2**70])
def test_a_value_that_cannot_cross_the_wire_is_refused_by_name(value):
    with pytest.raises(ValueError, match="must be a str, bool, int"):
        check([("name", "=", value)])


@pytest.mark.parametrize("limit", [2**70, -1, 1.5, True, "3"])
def test_a_limit_out_of_range_is_refused(limit):
    with pytest.raises(ValueError, match="limit must be an int from 0"):
        check_limit(limit)


def test_a_filter_on_a_column_the_short_rows_lack_asks_for_detail():
    short = [{"actor_id": "a", "state": "ALIVE"}]
    assert needs_detail(short, [["placement_group_id", "=", "x"]])
    assert not needs_detail(short, [["state", "=", "ALIVE"]])
    assert not needs_detail(short, [])
    assert not needs_detail([], [["placement_group_id", "=", "x"]])
