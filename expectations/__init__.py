"""Great Expectations suites as code: the data contract of the lake, one suite per table.

- ``rules``: the row-rule vocabulary (one declaration drives Spark, GE and the docs)
- ``raw``: the raw tables' suites (row rules, table checks, thresholds)
- ``features``: the features suite, built from the feature catalog
- ``spark_rules``: evaluate a rule table on a Spark DataFrame
- ``arrow_rules``: the same evaluation on a pyarrow Table (small partitions, no Spark)
- ``suites``: the GE suites and their runner (Data Docs)
- ``report``: outcomes, ``ValidationError`` and the HTML report

Nothing here reads or writes the lake or the warehouse: ``jobs/validate.py`` does.
Great Expectations itself is imported only when a suite runs (it is slow to import).
"""
from expectations.raw import RAW_SUITES, TABLE_CHECKS, RawSuite, raw_suite
from expectations.report import Finding, RuleOutcome, TableOutcome, ValidationError
from expectations.rules import RowRule, RuleContext

__all__ = ["RAW_SUITES", "TABLE_CHECKS", "RawSuite", "raw_suite", "Finding", "RuleOutcome",
           "TableOutcome", "ValidationError", "RowRule", "RuleContext"]
