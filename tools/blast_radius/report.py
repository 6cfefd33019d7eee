"""Renders a Report as aligned text, Markdown tables or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tools.blast_radius.scenarios import PRINCIPLES_PAGE, Finding, Report, Scenario

FORMATS = ("text", "markdown", "json")
OUTCOME_COLUMNS = ("Region", "Lost", "Hosts left", "Required", "Capacity", "Status", "Note")


def render(report: Report, fmt: str) -> str:
    if fmt == "text":
        return render_text(report)
    if fmt == "markdown":
        return render_markdown(report)
    if fmt == "json":
        return json.dumps(to_json(report), indent=2)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _outcome_rows(scenario: Scenario) -> list[tuple[str, ...]]:
    return [
        (o.region, o.lost, str(o.hosts), str(o.required), f"{o.percent} %", o.status, o.note)
        for o in scenario.outcomes
    ]


def _result(report: Report) -> str:
    return f"{'PASS' if report.exit_status == 0 else 'FAIL'} (exit {report.exit_status})"


# --- text ------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in (header, *rows)
    ]


def render_text(report: Report) -> str:
    lines = [
        f"Blast radius of {report.assembly}",
        f"Stage:     {report.stage} ({report.stage_basis})",
        f"Required:  {report.required_read_capacity} serving hosts per region ({report.required_source})",
        f"Principles are those of {PRINCIPLES_PAGE}, named as in its table.",
    ]
    for i, region in enumerate(report.regions):
        label = "Regions:" if i == 0 else ""
        lines.append(
            f"{label:<11}{region.name}: {len(region.azs)} AZs ({', '.join(region.azs)}), "
            f"{region.fleets} fleets, {region.hosts} serving hosts standing (up to {region.max_hosts})"
        )
    for scenario in report.scenarios:
        lines += ["", f"== {scenario.name} ==", *_table(OUTCOME_COLUMNS, _outcome_rows(scenario))]
        lines.append(f"  Writes:       {scenario.writes}")
        lines += [
            f"  {'Data at risk:' if i == 0 else '':<14}{d}" for i, d in enumerate(scenario.data_at_risk)
        ]
        lines.append(f"  Principles:   {', '.join(scenario.principles)}")
        lines += [f"  {'Notes:' if i == 0 else '':<14}{n}" for i, n in enumerate(scenario.notes)]
    notes = [f for f in report.findings if not f.violation]
    lines += ["", "Findings:" if notes else "Findings: none", *(f"  - {f.line()}" for f in notes)]
    lines += ["", f"Violations: {len(report.violations) or 'none'}"]
    lines += [f"VIOLATION {f.line()}" for f in report.violations]
    lines += ["", f"Result: {_result(report)}"]
    return "\n".join(lines)


# --- markdown --------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or " "


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
    ]


def _md_finding_rows(findings: Sequence[Finding]) -> list[tuple[str, ...]]:
    return [
        (f.principle, ", ".join(f"`{r}`" for r in f.resources) or "assembly", f.message, f.fix)
        for f in findings
    ]


def render_markdown(report: Report) -> str:
    lines = [
        f"# Blast radius of `{report.assembly}`",
        "",
        f"- **Stage:** {report.stage} ({report.stage_basis})",
        f"- **Required read capacity:** {report.required_read_capacity} serving hosts per region "
        f"({report.required_source})",
        f"- **Result:** {_result(report)}",
        f"- **Principles:** those of `{PRINCIPLES_PAGE}`, named as in its table",
        "",
        "## Regions",
        "",
        *_md_table(
            ("Region", "AZs", "Fleets", "Serving hosts", "Up to"),
            [
                (r.name, ", ".join(r.azs), str(r.fleets), str(r.hosts), str(r.max_hosts))
                for r in report.regions
            ],
        ),
        "",
        "## Scenarios",
    ]
    for scenario in report.scenarios:
        lines += ["", f"### {scenario.name}", "", *_md_table(OUTCOME_COLUMNS, _outcome_rows(scenario)), ""]
        lines.append(f"- **Writes:** {scenario.writes}")
        lines.append("- **Data at risk:**")
        lines += [f"  - {d}" for d in scenario.data_at_risk]
        lines.append(f"- **Principles:** {', '.join(scenario.principles)}")
        lines += [f"- **Note:** {n}" for n in scenario.notes]
    notes = [f for f in report.findings if not f.violation]
    lines += ["", "## Findings", ""]
    lines += (
        _md_table(("Principle", "Resources", "Finding", "Fix"), _md_finding_rows(notes))
        if notes
        else ["None."]
    )
    lines += ["", "## Violations", ""]
    lines += [f"- VIOLATION {f.line()}" for f in report.violations] or ["None."]
    return "\n".join(lines)


# --- json ------------------------------------------------------------------------------------


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "principle": finding.principle,
        "resources": [{"stack": r.stack, "logical_id": r.logical_id} for r in finding.resources],
        "message": finding.message,
        "fix": finding.fix,
        "violation": finding.violation,
        "line": finding.line(),
    }


def to_json(report: Report) -> dict[str, Any]:
    return {
        "assembly": report.assembly,
        "stage": {"name": report.stage, "basis": report.stage_basis},
        "required_read_capacity": {"hosts": report.required_read_capacity, "source": report.required_source},
        "regions": [
            {
                "name": r.name,
                "azs": list(r.azs),
                "fleets": r.fleets,
                "hosts": r.hosts,
                "max_hosts": r.max_hosts,
            }
            for r in report.regions
        ],
        "scenarios": [
            {
                "name": s.name,
                "kind": s.kind,
                "capacity_ok": s.capacity_ok,
                "regions": [
                    {
                        "region": o.region,
                        "lost": o.lost,
                        "hosts": o.hosts,
                        "required": o.required,
                        "percent": o.percent,
                        "status": o.status,
                        "note": o.note,
                    }
                    for o in s.outcomes
                ],
                "writes": {"survive": s.writes_survive, "detail": s.writes},
                "data_at_risk": list(s.data_at_risk),
                "principles": list(s.principles),
                "notes": list(s.notes),
            }
            for s in report.scenarios
        ],
        "findings": [_finding_json(f) for f in report.findings if not f.violation],
        "violations": [_finding_json(f) for f in report.violations],
        "exit_status": report.exit_status,
    }
