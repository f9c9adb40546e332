"""What a validation found, the error that stops a step, and the HTML a person reads.

:class:`TableOutcome` holds everything checked on one table partition; jobs turn it into
``replenish.data_quality`` rows and, with :func:`render_table`, into an HTML page.
:class:`ValidationError` names the table, partition, column and rule of every failure and
shows up to five offending rows each.
"""
from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from expectations.suites import SuiteResult

__all__ = ["Finding", "RuleOutcome", "TableOutcome", "ValidationError", "render_table",
           "render_index", "MAX_SAMPLES"]

MAX_SAMPLES = 5


def _fmt_sample(sample: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sample.items())


@dataclass(frozen=True)
class Finding:
    """A failure that stops the step."""

    table: str
    partition: dt.date | None
    column: str
    rule: str
    message: str
    samples: tuple[Mapping[str, Any], ...] = ()

    def describe(self) -> str:
        part = f"date={self.partition}" if self.partition else "(none)"
        lines = [f"table {self.table}, partition {part}, column {self.column or '-'}, "
                 f"rule {self.rule}: {self.message}"]
        lines += [f"    offending row: {_fmt_sample(s)}" for s in self.samples[:MAX_SAMPLES]]
        return "\n".join(lines)


@dataclass(frozen=True)
class RuleOutcome:
    """The result of one rule on one partition: one ``data_quality`` row."""

    rule: str
    column: str
    level: str  # "table", "row" or "ge"
    description: str
    success: bool
    check: str = ""
    rows_failed: int | None = None
    quarantines: bool = False
    samples: tuple[Mapping[str, Any], ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TableOutcome:
    """Everything checked on one table partition."""

    table: str
    suite: str
    run_date: dt.date
    partition: dt.date | None
    status: str  # "ok", "failed" or "skipped"
    rows_in: int | None = None
    rows_accepted: int | None = None
    rows_quarantined: int | None = None
    rules: tuple[RuleOutcome, ...] = ()
    findings: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    ge: tuple[SuiteResult, ...] = ()
    paths: Mapping[str, str] = field(default_factory=dict)


class ValidationError(Exception):
    """A validation failed; the message names table, partition, column, rule and samples."""

    def __init__(self, findings: Sequence[Finding], report: Any = None,
                 summary: Any = None) -> None:
        self.findings = tuple(findings)
        self.report = report
        self.summary = summary
        lines = [f"validation failed: {len(self.findings)} problem(s)"]
        lines += ["- " + f.describe() for f in self.findings]
        if report is not None:
            lines.append(f"report: {report}")
        super().__init__("\n".join(lines))


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
vertical-align:top;text-align:left}th{background:#f3f3f3}.ok{color:#176f2c}
.failed{color:#b00020;font-weight:bold}.skipped{color:#8a6d00}code{font-size:90%}
.samples{font-family:monospace;font-size:85%;white-space:pre-wrap}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _status(ok: bool) -> str:
    return '<span class="ok">pass</span>' if ok else '<span class="failed">FAIL</span>'


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + _e(title)
            + f"</title><style>{_CSS}</style></head><body>" + "\n".join(body)
            + "</body></html>\n")


def render_table(outcome: TableOutcome, max_share: float | None = None) -> str:
    """One HTML page for one table partition: counts, failures, every rule, GE results."""
    o = outcome
    title = f"{o.suite} - partition {o.partition or '(none)'} - run {o.run_date}"
    body = [f"<h1>{_e(title)}</h1>",
            f"<p>Status: <span class='{_e(o.status)}'>{_e(o.status.upper())}</span></p>"]
    if o.rows_in is not None:
        share = (o.rows_quarantined or 0) / o.rows_in if o.rows_in else 0.0
        limit = f" (limit {max_share:.2%})" if max_share is not None else ""
        body.append("<table><tr><th>rows in</th><th>accepted</th><th>quarantined</th>"
                    "<th>quarantined share</th></tr>"
                    f"<tr><td>{_e(o.rows_in)}</td><td>{_e(o.rows_accepted)}</td>"
                    f"<td>{_e(o.rows_quarantined)}</td><td>{share:.2%}{_e(limit)}</td></tr>"
                    "</table>")
    if o.findings:
        body.append("<h2 class='failed'>Failures</h2><ul>")
        body += [f"<li><pre class='samples'>{_e(f.describe())}</pre></li>" for f in o.findings]
        body.append("</ul>")
    for head, items in (("Warnings", o.warnings), ("Notes", o.notes)):
        if items:
            body.append(f"<h2>{head}</h2><ul>" + "".join(f"<li>{_e(w)}</li>" for w in items)
                        + "</ul>")
    body.append("<h2>Rules</h2><table><tr><th>level</th><th>rule</th><th>column</th>"
                "<th>what it checks</th><th>check</th><th>rows failing</th><th>result</th>"
                "<th>sample offending rows</th></tr>")
    for r in o.rules:
        samples = "\n".join(_fmt_sample(s) for s in r.samples[:MAX_SAMPLES])
        body.append(f"<tr><td>{_e(r.level)}</td><td>{_e(r.rule)}</td><td>{_e(r.column)}</td>"
                    f"<td>{_e(r.description)}</td><td><code>{_e(r.check)}</code></td>"
                    f"<td>{_e(r.rows_failed)}</td><td>{_status(r.success)}</td>"
                    f"<td class='samples'>{_e(samples)}</td></tr>")
    body.append("</table>")
    if o.ge:
        body.append("<h2>Great Expectations</h2>")
        for g in o.ge:
            link = f" - <a href='{_e(g.docs_url)}'>Data Docs page</a>" if g.docs_url else ""
            body.append(f"<h3>{_e(g.target)}: {_status(g.success)}{link}</h3>"
                        f"<p>{_e(g.summary())}</p>")
            if g.not_mapped:
                body.append("<p>Not mapped to an expectation: " + _e("; ".join(g.not_mapped))
                            + "</p>")
            body.append("<table><tr><th>expectation</th><th>column</th><th>rule</th>"
                        "<th>unexpected</th><th>result</th><th>sample</th></tr>")
            for x in g.outcomes:
                sample = ", ".join(x.sample) + (f" (error: {x.error})" if x.error else "")
                body.append(f"<tr><td>{_e(x.expectation)}</td><td>{_e(x.column)}</td>"
                            f"<td>{_e(x.rule)}</td><td>{_e(x.unexpected_count)}</td>"
                            f"<td>{_status(x.success)}</td><td class='samples'>{_e(sample)}"
                            "</td></tr>")
            body.append("</table>")
    if o.paths:
        body.append("<h2>Files</h2><ul>" + "".join(
            f"<li>{_e(k)}: <code>{_e(v)}</code></li>" for k, v in o.paths.items()) + "</ul>")
    return _page(title, body)


def render_index(run_date: dt.date, entries: Sequence[tuple[str, str, str, str]]) -> str:
    """Index of one run date's reports: (name, relative href, status, one-line summary)."""
    body = [f"<h1>Data quality - run {run_date}</h1>",
            "<table><tr><th>suite</th><th>status</th><th>summary</th></tr>"]
    body += [f"<tr><td><a href='{_e(href)}'>{_e(name)}</a></td>"
             f"<td class='{_e(status)}'>{_e(status)}</td><td>{_e(text)}</td></tr>"
             for name, href, status, text in entries]
    body.append("</table><p><a href='../../index.html'>Great Expectations Data Docs</a></p>")
    return _page(f"data quality {run_date}", body)
