"""What a person reads after a compile: report.json (report.py), the compile summary and
`edgeq inspect` (summary.py)."""
