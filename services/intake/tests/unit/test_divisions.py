"""The division table: levels, lineage, the shipped Gansu data and provincial extensions."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dibao_intake.domain.divisions import (
    DivisionLevel,
    DivisionTable,
    InvalidRegionCodeError,
    UnknownDivisionError,
    ancestor_code,
    is_village_committee,
    level_of,
    read_divisions_csv,
    township_of,
)


@pytest.fixture(scope="module")
def table() -> DivisionTable:
    return DivisionTable.load()


@pytest.mark.parametrize(
    ("code", "level"),
    [
        ("620000000000", DivisionLevel.PROVINCE),
        ("620100000000", DivisionLevel.PREFECTURE),
        ("620102000000", DivisionLevel.COUNTY),
        ("620102001000", DivisionLevel.TOWNSHIP),
        ("620102001001", DivisionLevel.VILLAGE),
    ],
)
def test_level_follows_the_zero_padding(code: str, level: DivisionLevel) -> None:
    assert level_of(code) is level


@pytest.mark.parametrize("code", ["62010200100", "6201020010011", "62010200100a", "000000000000"])
def test_malformed_codes_are_refused(code: str) -> None:
    with pytest.raises(InvalidRegionCodeError):
        level_of(code)


def test_ancestors_and_townships() -> None:
    assert township_of("620123101203") == "620123101000"
    assert ancestor_code("620123101203", DivisionLevel.COUNTY) == "620123000000"
    assert is_village_committee("620123101203")
    assert not is_village_committee("620102001001")


def test_the_shipped_table_holds_the_demo_district_and_county(table: DivisionTable) -> None:
    assert table.full_name("620102001001") == "甘肃省兰州市城关区酒泉路街道畅家巷社区居委会"
    assert table.full_name("620123101203") == "甘肃省兰州市榆中县夏官营镇夏官营村委会"
    prefectures = [d.code[:4] for d in table.children("620000000000")]
    assert prefectures[:2] == ["6201", "6202"]
    assert len(prefectures) == 14
    assert len(table.children("620102000000")) == 25  # every subdistrict of Chengguan


def test_require_checks_presence_and_level(table: DivisionTable) -> None:
    assert table.require("620102001001", DivisionLevel.VILLAGE).name == "畅家巷社区居委会"
    with pytest.raises(UnknownDivisionError):
        table.require("620102001099")
    with pytest.raises(UnknownDivisionError):
        table.require("620102001000", DivisionLevel.VILLAGE)


def test_a_province_extends_the_table_with_its_own_file(tmp_path: Path) -> None:
    extra = tmp_path / "extra.csv"
    extra.write_text(
        "code,name,level,parent_code\n620102010001,测试社区居委会,5,620102010000\n",
        encoding="utf-8",
    )
    extended = DivisionTable.load([extra])
    assert extended.full_name("620102010001").endswith("伏龙坪街道测试社区居委会")


@pytest.mark.parametrize(
    "row",
    [
        "620102010001,x,4,620102010000",  # level disagrees with the code
        "620102010001,x,5,620103010000",  # parent in another county
        "620102010001,x,5,",  # no parent
    ],
)
def test_inconsistent_rows_are_refused(row: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        list(read_divisions_csv(io.StringIO(f"code,name,level,parent_code\n{row}\n")))
