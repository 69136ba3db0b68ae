import random

import pytest

from schemas import uscc
from schemas.uscc import ALPHABET, Severity

# Vectors from GB 32100-2015 and docs/domain.md; the check digits were worked by hand there.
STANDARD_EXAMPLE = "91350100M000100Y43"
BEIJING_EXAMPLE = "91110000600037341L"
PILOT = "91350100M0001TGQXM"


def test_weights_follow_the_standard_table():
    # docs/domain.md lists W1..W17 explicitly; the module derives them as 3^(i-1) mod 31.
    assert uscc._WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def test_standard_example_check_sum_is_1640():
    total = sum(ALPHABET.index(c) * w for c, w in zip(STANDARD_EXAMPLE[:17], uscc._WEIGHTS, strict=True))
    assert total == 1640
    assert total % 31 == 28
    assert uscc.compute_check_digit(STANDARD_EXAMPLE[:17]) == "3"
    assert uscc.compute_org_check_digit("M000100Y") == "4"


def test_standard_example_parses_fully():
    r = uscc.parse(STANDARD_EXAMPLE)
    assert r.is_valid
    assert r.findings == ()
    assert r.code == STANDARD_EXAMPLE
    assert (r.registrar_code, r.registrar_name) == ("9", "工商/市场监管")
    assert (r.category_code, r.category_name) == ("1", "企业")
    assert r.division_code == "350100"
    assert r.org_code == "M000100Y4"


def test_second_known_valid_code():
    r = uscc.parse(BEIJING_EXAMPLE)
    assert r.is_valid, r.findings
    assert r.division_code == "110000"
    assert r.org_code == "600037341"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("M000100Y", "4"),
        ("60003734", "1"),
        # Sum 0+… chosen so that the special cases occur: 11-0 -> '0' and 11-1 = 10 -> 'X'.
        ("00000000", "0"),
    ],
)
def test_org_check_digit_vectors(body, expected):
    assert uscc.compute_org_check_digit(body) == expected


def test_org_check_digit_maps_ten_to_x():
    # Find a body whose weighted sum is 1 mod 11 (check = 10) by brute force, then confirm 'X'.
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    for d in range(10):
        body = f"0000000{d}"
        total = d * weights[-1]
        if total % 11 == 1:
            assert uscc.compute_org_check_digit(body) == "X"
            return
    pytest.fail("no single-digit body with sum 1 mod 11")


def test_org_body_letters_use_full_alphabet_values():
    # GB 11714 values letters over A..Z (I, O, S… included), unlike GB 32100's 31-char alphabet:
    # 'J' is 19 there, but 18 in the USCC alphabet. A body 'J0000000' has sum 19*3 = 57 -> 57 mod 11 = 2 -> 9.
    assert uscc.compute_org_check_digit("J0000000") == "9"


def test_lowercase_and_fullwidth_and_spaces_are_normalized():
    r = uscc.parse(" 91350100m000100y43 ")
    assert r.is_valid
    assert r.code == STANDARD_EXAMPLE
    fullwidth = "９１３５０１００Ｍ０００１００Ｙ４３"
    assert uscc.parse(fullwidth).code == STANDARD_EXAMPLE
    assert uscc.parse("9135 0100 M000 100Y 43").is_valid


@pytest.mark.parametrize("letter", ["I", "O", "S", "V", "Z"])
def test_excluded_letters_are_rejected_as_format(letter):
    code = STANDARD_EXAMPLE[:10] + letter + STANDARD_EXAMPLE[11:]
    r = uscc.parse(code)
    assert not r.is_valid
    assert r.finding_ids == ("format",)
    assert letter in r.findings[0].message


@pytest.mark.parametrize("value", ["", "9135010", STANDARD_EXAMPLE + "0", None, 913501])
def test_wrong_length_or_type_is_a_format_finding_not_an_exception(value):
    r = uscc.parse(value)
    assert not r.is_valid
    assert r.finding_ids == ("format",)


@pytest.mark.parametrize(
    ("registrar", "name"), [("A", "中央军委改革和编制办公室"), ("N", "农业"), ("Y", "其他")]
)
def test_letter_registrars_are_accepted(registrar, name):
    code = uscc.make_uscc(registrar, "1", "110000", "MA01234X")
    r = uscc.parse(code)
    assert r.is_valid, r.findings
    assert r.registrar_name == name
    # Categories for these registrars are outside docs/domain.md's table: a note, not an error.
    assert r.finding_ids == ("unknown_category",)
    assert r.findings[0].severity is Severity.INFO


def test_stdnum_would_reject_a_letter_registrar_that_we_accept():
    # Guard for the reason this module exists; if python-stdnum fixes this, revisit the comment.
    from stdnum.cn import uscc as stdnum_uscc

    code = uscc.make_uscc("N", "2", "330100", "12345678")
    assert uscc.is_valid(code)
    assert not stdnum_uscc.is_valid(code)


@pytest.mark.parametrize(
    ("prefix", "category"),
    [
        ("11", "机关"),
        ("12", "事业单位"),
        ("13", "群众团体"),
        ("19", "其他"),
        ("51", "社会团体"),
        ("52", "民办非企业单位"),
        ("53", "基金会"),
        ("59", "其他"),
        ("91", "企业"),
        ("92", "个体工商户"),
        ("93", "农民专业合作社"),
    ],
)
def test_category_names(prefix, category):
    r = uscc.parse(uscc.make_uscc(prefix[0], prefix[1], "441900", "L2345678"))
    assert r.is_valid
    assert r.category_name == category
    assert not r.has("unknown_category")


def test_unknown_category_is_not_invalid():
    r = uscc.parse(uscc.make_uscc("9", "4", "441900", "L2345678"))
    assert r.is_valid
    assert r.category_name is None
    assert r.has("unknown_category")


def test_unknown_registrar_is_invalid():
    # 'B' is in the alphabet but is not a registrar code.
    first17 = "B1441900L2345678" + uscc.compute_org_check_digit("L2345678")
    r = uscc.parse(first17 + uscc.compute_check_digit(first17))
    assert not r.is_valid
    assert r.finding_ids == ("registrar",)


def test_non_digit_division_is_flagged():
    first17 = "91" + "4419A0" + "L2345678" + uscc.compute_org_check_digit("L2345678")
    r = uscc.parse(first17 + uscc.compute_check_digit(first17))
    assert r.has("division_format")
    assert not r.is_valid


def test_wrong_check_digit_only():
    r = uscc.parse(STANDARD_EXAMPLE[:17] + "4")
    assert r.finding_ids == ("check_digit",)
    assert "'3'" in r.findings[0].message


def test_wrong_org_check_digit_is_reported_separately():
    # Replace position 17 and recompute position 18 so that only the GB 11714 check fails.
    first17 = STANDARD_EXAMPLE[:16] + "5"
    r = uscc.parse(first17 + uscc.compute_check_digit(first17))
    assert r.finding_ids == ("org_check_digit",)


def test_legacy_pilot_is_flagged_not_rejected():
    r = uscc.parse(PILOT)
    assert r.is_valid
    assert r.finding_ids == ("legacy_pilot",)
    assert r.findings[0].severity is Severity.WARN
    assert "check_digit" in r.findings[0].message
    # The same code with one character changed is no longer on the allow-list: rejected.
    tampered = uscc.parse(PILOT[:-1] + "N")
    assert not tampered.is_valid
    assert tampered.has("check_digit")
    assert not tampered.has("legacy_pilot")


def test_validate_raises_with_result_and_returns_normalized_code():
    assert uscc.validate(STANDARD_EXAMPLE.lower()) == STANDARD_EXAMPLE
    with pytest.raises(uscc.InvalidUsccError) as info:
        uscc.validate(STANDARD_EXAMPLE[:17] + "0")
    assert info.value.result.has("check_digit")
    assert isinstance(info.value, ValueError)


def test_make_uscc_reproduces_the_standard_example():
    assert uscc.make_uscc("9", "1", "350100", "M000100Y") == STANDARD_EXAMPLE


@pytest.mark.parametrize(
    "args",
    [
        ("B", "1", "110000", "12345678"),
        ("9", "11", "110000", "12345678"),
        ("9", "1", "11000", "12345678"),
        ("9", "1", "11000A", "12345678"),
        ("9", "1", "110000", "1234567"),
        ("9", "1", "110000", "1234567I"),
    ],
)
def test_make_uscc_refuses_bad_parts(args):
    with pytest.raises(ValueError):  # noqa: PT011 - any of several messages
        uscc.make_uscc(*args)


@pytest.mark.parametrize("bad", ["", "123", "9135010OM000100Y4"])
def test_compute_check_digit_refuses_bad_input(bad):
    with pytest.raises(ValueError, match="17 characters"):
        uscc.compute_check_digit(bad)


def _generated_codes(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    prefixes = ["11", "12", "52", "91", "92", "93", "A1", "N2", "Y1"]
    divisions = ["110105", "350100", "441900", "371202", "650000"]
    return [
        uscc.random_uscc(rng, registrar=p[0], category=p[1], division6=rng.choice(divisions))
        for p in (rng.choice(prefixes) for _ in range(n))
    ]


def test_generated_codes_are_all_valid():
    codes = _generated_codes(500, seed=1)
    assert len(set(codes)) > 490
    bad = [c for c in codes if not uscc.is_valid(c)]
    assert bad == []


def test_every_single_character_substitution_is_caught():
    # GB 32100's mod-31 check over a prime modulus with non-zero weights detects any single
    # substitution; exhaustively corrupt each position of many random codes with every other char.
    rng = random.Random(20240601)
    for code in _generated_codes(60, seed=7):
        for pos in range(18):
            for ch in ALPHABET:
                if ch == code[pos]:
                    continue
                corrupted = code[:pos] + ch + code[pos + 1 :]
                r = uscc.parse(corrupted)
                assert not r.is_valid, (code, corrupted)
        # And a random adjacent transposition of distinct characters.
        pos = rng.randrange(17)
        if code[pos] != code[pos + 1]:
            swapped = code[:pos] + code[pos + 1] + code[pos] + code[pos + 2 :]
            assert not uscc.is_valid(swapped), (code, swapped)


def test_result_is_frozen():
    r = uscc.parse(STANDARD_EXAMPLE)
    with pytest.raises(AttributeError):
        r.code = "x"  # type: ignore[misc]


def test_check_digits_agree_with_python_stdnum_and_the_written_out_formula():
    """The parse path's check digits (summed without re-checking the characters) against
    python-stdnum's for position 18, and against GB 11714's formula written out for position 17."""
    from stdnum.cn import uscc as stdnum_uscc

    rng = random.Random(11)
    for _ in range(5000):
        first17 = rng.choice("123456789") + "".join(rng.choice(uscc.ALPHABET) for _ in range(16))
        assert uscc.compute_check_digit(first17) == stdnum_uscc.calc_check_digit(first17), first17
        body = first17[8:16]
        total = sum(int(ch, 36) * w for ch, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
        check = 11 - total % 11
        assert uscc.compute_org_check_digit(body) == {10: "X", 11: "0"}.get(check, str(check)), body
