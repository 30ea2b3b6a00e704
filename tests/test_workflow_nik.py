"""NIK rules (research note reliability_security.md section 4.2) with its synthetic vectors."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.workflow.nik import NikError, check_biodata_against_nik, mask, parse_nik

TODAY = date(2026, 11, 29)


@pytest.mark.parametrize(
    ("nik", "sex", "born"),
    [
        ("3171011708450001", "M", date(1945, 8, 17)),
        ("3171015708450001", "F", date(1945, 8, 17)),
        ("3171012902001234", "M", date(2000, 2, 29)),
        ("6472014101100007", "F", date(2010, 1, 1)),
    ],
)
def test_valid(nik: str, sex: str, born: date) -> None:
    info = parse_nik(nik, today=TODAY)
    assert (info.sex, info.birth_date) == (sex, born)


@pytest.mark.parametrize(
    ("nik", "code"),
    [
        ("3171018108450001", "nik_day"),
        ("3171013508450001", "nik_day"),
        ("3171011708450000", "nik_serial"),
        ("3171013002001234", "nik_date"),
        ("9971011708450001", "nik_province"),
        ("317101170845000\uff11", "nik_format"),
        ("317101170845000\u0661", "nik_format"),
        ("317101170845000", "nik_format"),
        ("31710117084500012", "nik_format"),
        ("3100011708450001", "nik_region"),
        ("3171011713450001", "nik_date"),
    ],
)
def test_invalid(nik: str, code: str) -> None:
    with pytest.raises(NikError) as exc:
        parse_nik(nik, today=TODAY)
    assert exc.value.problem.code == code
    assert exc.value.problem.message_id and exc.value.problem.message_en


def test_future_birth_picks_last_century() -> None:
    assert parse_nik("3171011708300001", today=TODAY).birth_date == date(1930, 8, 17)


def test_cross_checks() -> None:
    problems = check_biodata_against_nik(
        "3171011708450001", birth_date=date(1945, 8, 18), sex="F", district_code="647201", today=TODAY
    )
    assert {p.code for p in problems} == {"nik_sex_mismatch", "nik_birth_mismatch", "nik_district_mismatch"}
    assert check_biodata_against_nik(
        "3171011708450001", birth_date=date(1945, 8, 17), sex="M", district_code="317101", today=TODAY
    ) == []


def test_mask_hides_the_middle() -> None:
    assert mask("3171011708450001") == "3171**********01"


@given(st.text(max_size=20))
def test_arbitrary_text_raises_only_nik_error(text: str) -> None:
    try:
        parse_nik(text, today=TODAY)
    except NikError:
        pass


@given(
    st.sampled_from(["31", "64", "96"]), st.integers(1, 99), st.integers(1, 99),
    st.dates(min_value=date(1907, 1, 1), max_value=TODAY), st.sampled_from("MF"), st.integers(1, 9999),
)
def test_generated_valid_niks_round_trip(pp: str, rr: int, ss: int, born: date, sex: str, serial: int) -> None:
    day = born.day + (40 if sex == "F" else 0)
    nik = f"{pp}{rr:02d}{ss:02d}{day:02d}{born.month:02d}{born.year % 100:02d}{serial:04d}"
    info = parse_nik(nik, today=TODAY)
    assert info.sex == sex
    assert info.birth_date.month == born.month and info.birth_date.day == born.day
    assert info.birth_date.year % 100 == born.year % 100
