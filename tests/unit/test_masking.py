import random
import re

import pytest

from schemas.masking import mask_phone, mask_resident_id, mask_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("11010519900307123X", "110105********123X"),
        ("110105199003071234", "110105********1234"),
        ("110105900307123", "110105*****7123"),  # first-generation 15-digit ID
        ("1234567890", "12******90"),  # malformed: keeps less than a valid ID would
        ("1234", "****"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_resident_id(value, expected):
    assert mask_resident_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("13812345678", "138****5678"),
        ("138-1234-5678", "138-****-5678"),
        ("+86 138 1234 5678", "+86 138 **** 5678"),
        ("8613812345678", "86138****5678"),
        ("010-12345678", "010-****5678"),
        ("0755-8888 1234", "0755-**** 1234"),
        ("(010)12345678", "(010)****5678"),
        ("0571-8765432", "0571-***5432"),
        ("95588", "*5588"),  # neither pattern: only the last 4 digits stay
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone(value, expected):
    assert mask_phone(value) == expected


def test_mask_text_finds_ids_and_phones():
    text = "法定代表人张三，身份证号110105199003071234，手机13812345678，办公电话010-12345678。"
    masked = mask_text(text)
    assert masked == "法定代表人张三，身份证号110105********1234，手机138****5678，办公电话010-****5678。"
    assert "19900307" not in masked


def test_mask_text_leaves_credit_codes_and_other_numbers():
    # USCCs contain letters or, when all digits, have no birth date at positions 7-14.
    text = "统一社会信用代码91350100M000100Y43、121000004000000000，金额 1234567 元，2024-05-01"
    assert mask_text(text) == text


def test_mask_text_masks_ids_with_lowercase_x_and_15_digit_ids():
    assert mask_text("证件:11010519900307123x") == "证件:110105********123x"
    assert mask_text("旧证 110105900307123 号") == "旧证 110105*****7123 号"


def test_mask_text_does_not_touch_digits_inside_longer_runs():
    # A 19-digit run (e.g. a bank card) is not an ID; phones must not be found inside it either.
    text = "卡号6222021001138123456"
    assert mask_text(text) == text


@pytest.mark.parametrize(
    "value",
    [
        "身份证110105199003071234 电话13812345678",
        "+86 138-1234-5678 / (0755)8888-1234",
        "110105********1234",
        "无个人信息",
        "",
    ],
)
def test_masking_is_idempotent(value):
    once = mask_text(value)
    assert mask_text(once) == once
    assert mask_phone(mask_phone(value)) == mask_phone(value)
    assert mask_resident_id(mask_resident_id(value)) == mask_resident_id(value)


def test_idempotent_and_leak_free_on_generated_text():
    rng = random.Random(42)
    fillers = ["联系人", "，", "电话：", " ", "地址北京市朝阳区", "身份证号", "；备注"]
    for _ in range(300):
        birth = f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        rid = f"{rng.randint(110000, 659999)}{birth}{rng.randint(0, 999):03d}{rng.choice('0123456789X')}"
        mobile = f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"
        parts = [rng.choice(fillers), rid, rng.choice(fillers), mobile, rng.choice(fillers)]
        text = "".join(parts)
        masked = mask_text(text)
        assert rid not in masked
        assert birth not in masked
        assert mobile not in masked
        assert mobile[:3] + "****" + mobile[-4:] in masked
        assert mask_text(masked) == masked
        assert re.search(r"\d{6}\*{8}[\dX]{4}", masked)
