from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from fashion_retrieval.evaluation import submission as submission_module
from fashion_retrieval.evaluation.submission import (
    SubmissionError,
    read_pairs,
    score_submission,
    validate_submission,
    write_submission,
)


def bid(i: int) -> str:
    return f"B_{i:012x}"


def pid(i: int) -> str:
    return f"I_{i:012x}"


TEST_BUNDLES = [bid(1), bid(2)]
CATALOGUE = [pid(i) for i in range(1, 21)]


def frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["bundle_asset_id", "product_asset_id"])


def valid_rows() -> list[tuple[str, str]]:
    return [
        (bid(1), pid(1)),
        (bid(1), pid(2)),
        (bid(1), pid(3)),
        (bid(2), pid(4)),
        (bid(2), pid(5)),
        (bid(2), pid(6)),
    ]


def validate(rows_or_frame: list[tuple[str, str]] | pd.DataFrame, **kwargs: object) -> None:
    df = rows_or_frame if isinstance(rows_or_frame, pd.DataFrame) else frame(rows_or_frame)
    validate_submission(df, TEST_BUNDLES, CATALOGUE, k=3, **kwargs)  # type: ignore[arg-type]


# --- validate_submission --------------------------------------------------------------------------


def test_valid_submission_passes() -> None:
    validate(valid_rows())


def test_missing_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match="lacks column\\(s\\) product_asset_id"):
        validate(pd.DataFrame({"bundle_asset_id": [bid(1)], "product": [pid(1)]}))
    path = tmp_path / "sub.csv"
    path.write_text("bundle_asset_id,product\nB_1,I_1\n")
    with pytest.raises(SubmissionError, match=f"submission file {path} lacks column\\(s\\) product_asset_id"):
        validate_submission(path, TEST_BUNDLES, CATALOGUE, k=3)


def test_extra_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sub.csv"
    frame(valid_rows()).to_csv(path)  # index=True by mistake
    with pytest.raises(SubmissionError, match="unexpected column\\(s\\) Unnamed: 0"):
        validate_submission(path, TEST_BUNDLES, CATALOGUE, k=3)


def test_empty_cells_are_named_not_nan(tmp_path: Path) -> None:
    path = tmp_path / "sub.csv"
    path.write_text("bundle_asset_id,product_asset_id\n" + "".join(f"{b},{p}\n" for b, p in valid_rows()))
    lines = path.read_text().splitlines()
    lines[3] = f"{bid(1)},"  # row 2
    path.write_text("\n".join(lines) + "\n")
    assert read_pairs(path)["product_asset_id"].iloc[2] == ""
    with pytest.raises(SubmissionError, match="1 empty product_asset_id: row 2 \\(line 4\\)"):
        validate_submission(path, TEST_BUNDLES, CATALOGUE, k=3)

    rows = valid_rows()
    rows[5] = ("", pid(6))
    with pytest.raises(SubmissionError, match="1 empty bundle_asset_id: row 5") as info:
        validate(rows)
    assert f"{bid(2)} has 2 rows" in str(info.value)


def test_nan_cells_in_a_dataframe_count_as_empty() -> None:
    df = frame(valid_rows())
    df.loc[1, "product_asset_id"] = None
    with pytest.raises(SubmissionError, match="empty product_asset_id: row 1"):
        validate(df)


def test_wrong_row_count_names_bundle_and_count() -> None:
    rows = valid_rows()[:-1]
    with pytest.raises(SubmissionError, match=f"1 bundle\\(s\\) without exactly 3 rows: {bid(2)} has 2 rows"):
        validate(rows)
    rows = [*valid_rows(), (bid(2), pid(7))]
    with pytest.raises(SubmissionError, match=f"{bid(2)} has 4 rows"):
        validate(rows)


def test_unknown_product_names_row_and_id() -> None:
    rows = valid_rows()
    rows[4] = (bid(2), pid(999))
    with pytest.raises(
        SubmissionError, match=f"1 product\\(s\\) not in the catalogue: row 4 \\(line 6\\): {pid(999)}"
    ):
        validate(rows)


def test_repeated_pair_names_both_rows() -> None:
    rows = valid_rows()
    rows[2] = (bid(1), pid(1))
    with pytest.raises(
        SubmissionError, match=f"row 2 \\(line 4\\) repeats row 0 \\(line 2\\) \\({bid(1)}, {pid(1)}\\)"
    ):
        validate(rows)


def test_bundle_outside_test_set_is_named() -> None:
    rows = [*valid_rows(), (bid(9), pid(1)), (bid(9), pid(2)), (bid(9), pid(3))]
    with pytest.raises(SubmissionError, match=f"1 bundle\\(s\\) not in the test set: {bid(9)}") as info:
        validate(rows)
    assert "without exactly" not in str(info.value)


def test_missing_test_bundle_is_named() -> None:
    with pytest.raises(SubmissionError, match=f"1 test bundle\\(s\\) missing: {bid(2)}"):
        validate(valid_rows()[:3])


def test_section_clash_is_named_and_unknown_sections_allowed() -> None:
    bundle_section = {bid(1): 1, bid(2): 2}
    product_section = {pid(1): 1, pid(2): 1, pid(4): 2, pid(5): 1}  # pid(3), pid(6) unseen in training
    with pytest.raises(
        SubmissionError,
        match=f"1 product\\(s\\) placed in a bundle of another section: row 4 \\(line 6\\): "
        f"product {pid(5)} \\(section 1\\) in bundle {bid(2)} \\(section 2\\)",
    ):
        validate(valid_rows(), product_section=product_section, bundle_section=bundle_section)
    product_section[pid(5)] = 2
    validate(valid_rows(), product_section=product_section, bundle_section=bundle_section)
    with pytest.raises(ValueError, match="together"):
        validate(valid_rows(), product_section=product_section)


def test_many_offenders_show_five_examples_and_total() -> None:
    rows = [(b, pid(100 + i)) for i, (b, _) in enumerate(valid_rows())]
    with pytest.raises(SubmissionError, match="6 product\\(s\\) not in the catalogue") as info:
        validate(rows)
    line = next(line for line in str(info.value).splitlines() if "catalogue" in line)
    assert line.count(" row ") == 5 and line.endswith("; ...")


def test_all_problems_are_reported_together() -> None:
    rows = [*valid_rows()[:2], (bid(1), pid(999))]
    with pytest.raises(SubmissionError) as info:
        validate(rows)
    message = str(info.value)
    assert message.startswith("submission DataFrame is invalid:")
    assert "test bundle(s) missing" in message and "not in the catalogue" in message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        validate_submission(tmp_path / "nope.csv", TEST_BUNDLES, CATALOGUE)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SubmissionError, match=r"empty\.csv is empty"):
        validate_submission(tmp_path / "empty.csv", TEST_BUNDLES, CATALOGUE)


# --- write_submission -----------------------------------------------------------------------------


def test_write_read_round_trip_default_k(tmp_path: Path) -> None:
    ranked = [[pid(i) for i in range(1, 16)], [pid(i) for i in range(20, 5, -1)]]
    catalogue = [pid(i) for i in range(1, 21)]
    path = tmp_path / "out" / "submission.csv"
    write_submission(path, TEST_BUNDLES, ranked)
    assert path.read_text().splitlines()[0] == "bundle_asset_id,product_asset_id"
    df = read_pairs(path)
    assert len(df) == 30
    assert df[df.bundle_asset_id == bid(2)].product_asset_id.tolist() == ranked[1]
    validate_submission(path, TEST_BUNDLES, catalogue)
    assert [p.name for p in path.parent.iterdir()] == ["submission.csv"]


@pytest.mark.parametrize(
    ("bundles", "ranked", "match"),
    [
        ([bid(1), bid(2)], [[pid(1), pid(2), pid(3)]], "2 bundle ids but 1 rows"),
        ([bid(1), bid(2)], [[pid(1), pid(2), pid(3)], [pid(1), pid(2)]], f"bundle {bid(2)} has 2 products"),
        (
            [bid(1)],
            [[pid(1), pid(2), pid(1)]],
            f"bundle {bid(1)} lists product\\(s\\) more than once: {pid(1)}",
        ),
        ([bid(1), bid(1)], [[pid(1), pid(2), pid(3)]] * 2, f"bundle {bid(1)} appears more than once"),
        ([bid(1)], [[pid(1), "", pid(3)]], f"bundle {bid(1)} has a product id that is not a non-empty str"),
        ([""], [[pid(1), pid(2), pid(3)]], "bundle id at position 0"),
    ],
)
def test_write_rejects_bad_rows_and_writes_nothing(
    tmp_path: Path, bundles: list[str], ranked: list[list[str]], match: str
) -> None:
    with pytest.raises(SubmissionError, match=match):
        write_submission(tmp_path / "s.csv", bundles, ranked, k=3)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.csv"
    path.write_text("old\n")
    real_writer = csv.writer

    class FailingWriter:
        def __init__(self, handle: object, **kwargs: object) -> None:
            self._writer = real_writer(handle, **kwargs)  # type: ignore[arg-type]

        def writerow(self, row: object) -> None:
            self._writer.writerow(row)  # type: ignore[arg-type]

        def writerows(self, rows: list) -> None:
            self._writer.writerow(rows[0])
            raise OSError("disk full")

    monkeypatch.setattr(submission_module.csv, "writer", FailingWriter)
    with pytest.raises(OSError, match="disk full"):
        write_submission(path, TEST_BUNDLES, [[pid(1), pid(2), pid(3)], [pid(4), pid(5), pid(6)]], k=3)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]


# --- score_submission -----------------------------------------------------------------------------


def hand_made() -> tuple[pd.DataFrame, pd.DataFrame]:
    truth = frame(
        [
            (bid(1), pid(1)),
            (bid(1), pid(2)),
            (bid(1), pid(3)),
            (bid(2), pid(4)),
            (bid(3), pid(5)),
            (bid(3), pid(6)),
        ]
    )
    submission = frame(
        [
            (bid(1), pid(1)),
            (bid(2), pid(7)),  # bundles interleaved: order within a bundle is what counts
            (bid(1), pid(9)),
            (bid(1), pid(2)),
            (bid(1), pid(3)),  # 4th row of bid(1): beyond k=3, ignored
            (bid(2), pid(8)),
            (bid(2), pid(4)),
            (bid(4), pid(1)),  # not in truth: ignored
        ]
    )
    return submission, truth


def test_score_hand_made_example(tmp_path: Path) -> None:
    submission, truth = hand_made()
    # bid(1): hits at ranks 1 and 3 of 3 truth; bid(2): hit at rank 3 of 1; bid(3): absent, 2 truth.
    expected = {
        "recall@3": 3 / 6,
        "per_query_recall@3": (2 / 3 + 1 + 0) / 3,
        "hit_rate@3": 2 / 3,
        "precision@3": (2 / 3 + 1 / 3 + 0) / 3,
        "map@3": ((1 + 2 / 3) / 3 + (1 / 3) / 1 + 0) / 3,
        "num_bundles": 3.0,
        "num_truth_pairs": 6.0,
        "num_hits": 3.0,
        "num_bundles_missing": 1.0,
        "num_bundles_not_in_truth": 1.0,
    }
    result = score_submission(submission, truth, k=3)
    assert result == pytest.approx(expected, abs=1e-12)

    submission.to_csv(tmp_path / "s.csv", index=False)
    truth.to_csv(tmp_path / "t.csv", index=False)
    assert score_submission(tmp_path / "s.csv", tmp_path / "t.csv", k=3) == pytest.approx(expected, abs=1e-12)


def test_score_counts_repeated_product_once() -> None:
    truth = frame([(bid(1), pid(1)), (bid(1), pid(2))])
    submission = frame([(bid(1), pid(1)), (bid(1), pid(1)), (bid(1), pid(2))])
    result = score_submission(submission, truth, k=2)
    assert result["recall@2"] == 0.5 and result["num_hits"] == 1.0
    assert score_submission(submission, truth, k=3)["recall@3"] == 1.0


def test_score_rejects_bad_truth() -> None:
    submission, truth = hand_made()
    with pytest.raises(
        SubmissionError, match="truth DataFrame: repeated \\(bundle, product\\) row\\(s\\): row 6"
    ):
        score_submission(submission, pd.concat([truth, truth.iloc[[0]]], ignore_index=True), k=3)
    with pytest.raises(SubmissionError, match="truth DataFrame lacks column\\(s\\) bundle_asset_id"):
        score_submission(submission, truth.rename(columns={"bundle_asset_id": "bundle"}), k=3)
    with pytest.raises(ValueError, match="k must be a positive int"):
        score_submission(submission, truth, k=0)
