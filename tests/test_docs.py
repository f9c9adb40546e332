"""Generated documentation stays in step with the code it documents."""
from __future__ import annotations

from pathlib import Path

from features.catalog import catalog_markdown
from jobs.schema import schema_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_raw_schema_doc_is_current():
    assert (DOCS / "raw_schema.md").read_text().strip() == schema_markdown().strip(), \
        "run: replenish schema --markdown > docs/raw_schema.md"


def test_feature_catalog_doc_is_current():
    assert (DOCS / "features.md").read_text().strip() == catalog_markdown().strip(), \
        "regenerate docs/features.md from features.catalog.catalog_markdown()"
