"""Rewrite ``src/deepgen/catalog.json`` (what ``deepgen list`` prints without importing torch) from the code.

    PYTHONPATH=src .venv/bin/python scripts/write_catalog.py

tests/test_cli.py fails while the file differs from the models' and datasets' own descriptions.
"""

import json

from deepgen.cli import CATALOG_FILE, catalog_now

CATALOG_FILE.write_text(json.dumps(catalog_now(), indent=1, ensure_ascii=False) + "\n")
print(f"wrote {CATALOG_FILE}")
