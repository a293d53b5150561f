"""Phone normalisation: the vectorised path must say exactly what phonenumbers says."""

from __future__ import annotations

import random

import phonenumbers
import polars as pl
import pytest

from identity.phones import fast_path_share, normalize_phones, reference_normalize


@pytest.mark.parametrize(
    ("raw", "e164", "status"),
    [
        ("+86 139 0013 9001", "+8613900139001", "ok"),
        ("0086-139-0013-9001", "+8613900139001", "ok"),
        ("8613900139001", "+8613900139001", "ok"),
        ("(+86)139-0013-9001", "+8613900139001", "ok"),
        ("１３９００１３９００１", "+8613900139001", "ok"),
        ("'13900139001", "+8613900139001", "ok"),
        ("1.3900139001E+10", "+8613900139001", "ok"),
        ("1.38123E+10", None, "mangled"),
        ("138****5678", None, "masked"),
        ("17012345678-1234", None, "virtual"),
        ("13900139001 转 123", None, "virtual"),
        ("+86 13900139001 EXT. 12", None, "virtual"),
        ("13900139001-1234567", None, "invalid"),  # an extension that long is no virtual number
        ("1.390013900E+10", "+8613900139000", "ok"),  # ten digits kept: the eleventh was a zero
        ("+1.3900139001e10", "+8613900139001", "ok"),
        ("1.39001390E+10", None, "mangled"),
        ("13800138000", "+8613800138000", "placeholder"),
        ("11111111111", None, "placeholder"),
        ("12345678901", None, "placeholder"),
        ("0571-88886666", "+8657188886666", "ok"),
        ("+852 61234567", "+85261234567", "ok"),
        ("1390013900", None, "invalid"),
        ("", None, "empty"),
        (None, None, "empty"),
    ],
)
def test_rule_book(raw, e164, status):
    assert reference_normalize(raw)[:2] == (e164, status)
    row = normalize_phones(pl.Series([raw], dtype=pl.String)).row(0)
    assert row[:2] == (e164, status)


def test_landline_is_valid_but_not_mobile():
    assert reference_normalize("010-12345678") == ("+861012345678", "ok", False)
    assert reference_normalize("13900139001")[2] is True


def _messy_corpus(n: int, seed: int = 11) -> list[str | None]:
    """Random numbers (valid, invalid, other countries) in every spelling channels produce."""
    rng = random.Random(seed)
    prefixes = ["130", "133", "135", "139", "145", "150", "162", "166", "170", "171", "174", "177", "180", "188",
                "191", "199", "100", "120", "140", "192", "197"]
    out: list[str | None] = []
    for _ in range(n):
        national = rng.choice(prefixes) + "".join(rng.choice("0123456789") for _ in range(8))
        kind = rng.random()
        if kind < 0.05:
            national = national[: rng.randint(5, 10)]
        elif kind < 0.08:
            national = national + rng.choice("0123456789")
        elif kind < 0.11:
            national = "0" + rng.choice(["10", "21", "571", "755", "20"]) + "".join(
                rng.choice("0123456789") for _ in range(8))
        spelled = rng.choice([
            national, "+86" + national, "+86 " + national, "0086" + national, "86" + national,
            f"{national[:3]}-{national[3:7]}-{national[7:]}", f"{national[:3]} {national[3:7]} {national[7:]}",
            "(+86)" + national, "'" + national, " " + national + " ", national.translate(
                str.maketrans("0123456789", "０１２３４５６７８９")),
            national[:3] + "****" + national[-4:], national + "-" + str(rng.randint(1000, 9999)),
            f"{national[0]}.{national[1:]}E+{len(national) - 1}", f"{national[0]}.{national[1:6]}E+10",
            "+852 " + national[-8:], "+1 415 555 " + national[-4:], "", None, national[0] * 11,
            # digits of other scripts, which phonenumbers reads as ASCII ones (Arabic-Indic, Devanagari)
            national[:3] + national[3:].translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
            national.translate(str.maketrans("0123456789", "०१२३४५६७८९")),
        ])
        out.append(spelled)
    return out


def test_vectorised_path_agrees_with_reference_on_a_large_messy_corpus():
    corpus = _messy_corpus(40_000)
    got = normalize_phones(pl.Series(corpus, dtype=pl.String)).rows()
    expected = [reference_normalize(v) for v in corpus]
    mismatches = [(c, g, e) for c, g, e in zip(corpus, got, expected, strict=True) if g != e]
    assert mismatches == []


def test_reference_matches_phonenumbers_for_every_valid_result():
    for raw in _messy_corpus(5_000, seed=3):
        e164, status, _ = reference_normalize(raw)
        if status == "ok":
            assert phonenumbers.is_valid_number(phonenumbers.parse(e164))


def test_common_mainland_spellings_take_the_fast_path():
    common = pl.Series(["13900139001", "+8613900139001", "139-0013-9001", "0086 139 0013 9001",
                        "010-12345678", "0755-8765 4321", "(021)62345678"] * 100)
    assert fast_path_share(common) == 1.0


def test_landlines_the_fast_path_cannot_vouch_for_go_to_the_reference():
    # valid as a mobile once the trunk 0 is gone, a placeholder, too short, other scripts' digits
    doubtful = pl.Series(["013812345678", "01234567890", "0-2222222", "010-1234567", "010-١٢٣٤٥٦٧٨"])
    assert fast_path_share(doubtful) == 0.0
    got = normalize_phones(doubtful).rows()
    assert got == [reference_normalize(v) for v in doubtful]
    assert got[0] == ("+8613812345678", "ok", True)
