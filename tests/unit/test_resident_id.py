import datetime as dt

import pytest
from stdnum.cn import ric

from schemas.resident_id import is_valid, parse_resident_id


def make_id(first17: str) -> str:
    """A number with a correct GB 11643 check digit (computed by stdnum, independently of our code)."""
    return first17 + ric.calc_check_digit(first17 + "0")


VALID = make_id("11010519900307123")
DOC_EXAMPLE = "360426199101010071"  # from python-stdnum's documentation


def test_valid_id_gives_birth_date_and_no_findings():
    r = parse_resident_id(VALID)
    assert r.is_valid
    assert r.findings == ()
    assert r.birth_date == dt.date(1990, 3, 7)
    assert r.number == VALID
    assert r.masked == VALID[:6] + "********" + VALID[-4:]


def test_documented_example_is_valid():
    assert is_valid(DOC_EXAMPLE)
    assert parse_resident_id(DOC_EXAMPLE).birth_date == dt.date(1991, 1, 1)


def test_check_digit_x_and_lowercase_and_separators():
    # Find a number whose check digit is X, then feed it in lowercase with spaces.
    for seq in range(1000):
        number = make_id(f"11010519900307{seq:03d}")
        if number.endswith("X"):
            break
    else:
        pytest.fail("no X check digit in 1000 sequence numbers")
    r = parse_resident_id(" " + number[:6] + " " + number[6:14] + " " + number[14:].lower() + " ")
    assert r.is_valid, r.findings
    assert r.number == number


@pytest.mark.parametrize(
    ("value", "finding"),
    [
        (None, "empty"),
        ("", "empty"),
        ("110105900307123", "legacy_15_digit"),
        ("11010519900307", "length"),
        ("1101051990030712345", "length"),
        ("11010519900307A234", "format"),
        ("11010519900307123Y", "format"),
    ],
)
def test_structural_problems_are_findings_not_exceptions(value, finding):
    r = parse_resident_id(value)
    assert not r.is_valid
    assert r.findings == (finding,)
    assert r.birth_date is None


def test_wrong_check_digit():
    wrong = VALID[:17] + ("0" if VALID[17] != "0" else "1")
    r = parse_resident_id(wrong)
    assert r.findings == ("check_digit",)
    assert r.birth_date == dt.date(1990, 3, 7)  # still informative


def test_impossible_birth_date():
    r = parse_resident_id(make_id("11010519900230123"))  # 30 February
    assert r.findings == ("birth_date",)
    assert r.birth_date is None


def test_future_birth_date_relative_to_as_of_day():
    number = make_id("11010520250101123")
    assert parse_resident_id(number, today=dt.date(2024, 12, 31)).findings == ("birth_date_future",)
    assert parse_resident_id(number, today=dt.date(2025, 1, 1)).is_valid


def test_unknown_region_code():
    r = parse_resident_id(make_id("99999919900307123"))
    assert r.findings == ("region",)


def test_repr_never_shows_the_full_number_or_birth_date():
    r = parse_resident_id(VALID)
    text = repr(r) + str(r)
    assert VALID not in text
    assert "19900307" not in text
    assert "1990" not in text
    assert r.masked in text


def test_non_string_input():
    assert parse_resident_id(12345).findings == ("length",)


def test_region_created_after_birth_is_accepted():
    """370116 莱芜区 exists since 2019; a person born in 1970 may well hold a number issued there."""
    import datetime as dt
    import random

    from simulators.world import resident_id

    number = resident_id(random.Random(1), "370116", dt.date(1970, 5, 1))
    r = parse_resident_id(number, today=dt.date(2026, 1, 1))
    assert r.is_valid, r.findings
