"""What the user reads: the error message and the HTML report."""
from __future__ import annotations

import datetime as dt

from expectations.report import (
    Finding,
    RuleOutcome,
    TableOutcome,
    ValidationError,
    render_index,
    render_table,
)

D = dt.date(2025, 10, 9)


def test_the_error_names_table_partition_column_rule_and_five_samples() -> None:
    samples = tuple({"txn_id": f"t{i}", "quantity": str(-i)} for i in range(8))
    err = ValidationError([
        Finding("sales", D, "quantity", "column_types", "expected int32, found string", samples),
        Finding("stores", None, "", "partition_present", "no snapshot")], report="/r/index.html")
    text = str(err)
    assert "table sales, partition date=2025-10-09, column quantity, rule column_types: " \
           "expected int32, found string" in text
    assert text.count("offending row:") == 5 and "txn_id='t4'" in text and "t5" not in text
    assert "table stores, partition (none), column -, rule partition_present" in text
    assert text.endswith("report: /r/index.html") and len(err.findings) == 2


def test_the_html_report_lists_rules_counts_and_escapes() -> None:
    outcome = TableOutcome(
        table="sales", suite="raw.sales", run_date=D, partition=D, status="failed", rows_in=10,
        rows_accepted=7, rows_quarantined=3,
        rules=(RuleOutcome("quantity_range", "quantity", "row", "0 <= quantity <= 10000",
                           False, "`quantity` < 0", rows_failed=3, quarantines=True,
                           samples=({"txn_id": "<script>"},)),),
        findings=(Finding("sales", D, "", "quarantine_share", "30% quarantined"),),
        warnings=("extra column coupon dropped",), paths={"clean": "/lake/clean/sales"})
    page = render_table(outcome, 0.01)
    assert "quantity_range" in page and "30.00%" in page and "limit 1.00%" in page
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "extra column coupon dropped" in page and "/lake/clean/sales" in page
    index = render_index(D, [("raw.sales", "raw_sales.html", "failed", "10 in")])
    assert "raw_sales.html" in index and "2025-10-09" in index
