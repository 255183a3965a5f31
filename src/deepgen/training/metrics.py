"""metrics.csv: one row per logged step, rewritten atomically (never half-written)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from deepgen.io import write_text

METRICS_FILE = "metrics.csv"


class MetricsTable:
    """Rows keyed by step; columns are the union of every logged name."""

    def __init__(self, rows: list[dict] | None = None):
        self.rows: dict[int, dict] = {}
        for r in rows or []:
            self.update(int(r["step"]), {k: v for k, v in r.items() if k != "step"})

    def update(self, step: int, values: dict) -> None:
        self.rows.setdefault(step, {"step": step}).update(values)

    def columns(self) -> list[str]:
        cols = ["step"]
        for r in self.rows.values():
            cols += [k for k in r if k not in cols]
        return cols

    def column(self, name: str) -> tuple[list[int], list[float]]:
        pts = [(s, float(r[name])) for s, r in sorted(self.rows.items()) if r.get(name) not in (None, "")]
        return [p[0] for p in pts], [p[1] for p in pts]

    def write(self, path) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns(), restval="")
        w.writeheader()
        for step in sorted(self.rows):
            w.writerow(self.rows[step])
        write_text(path, buf.getvalue())

    @classmethod
    def read(cls, path) -> "MetricsTable":
        path = Path(path)
        if not path.is_file():
            return cls()
        with open(path, newline="") as f:
            return cls(list(csv.DictReader(f)))
