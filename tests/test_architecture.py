"""The house rules, enforced: layers import only downward, no import circles, every module
imports on its own, ``deepgen --help`` imports no torch, and every model declares itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PKG = SRC / "deepgen"

# Lowest first.  A module may import its own package and any package of a lower layer;
# packages of one layer are siblings and never import each other.
LAYERS = [
    ("errors",),
    ("io", "ops"),
    ("data",),
    ("nets", "bijections", "distributions", "losses"),
    ("models",),
    ("evaluation",),
    ("training",),
    ("workflows", "ood"),
    ("cli",),
    ("__main__",),
]
RANK = {name: r for r, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The deepgen module an import of ``name`` loads (the longest existing prefix)."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in MODULES:
            return cand
        parts.pop()
    return None


def imports_of(mod: str) -> set[str]:
    """Every deepgen module ``mod`` imports, at module level or inside functions."""
    path = MODULES[mod]
    tree = ast.parse(path.read_text(), str(path))
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for n in names:
            if n == "deepgen" or n.startswith("deepgen."):
                target = resolve(n)
                if target and target != mod:
                    found.add(target)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def package_of(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "deepgen"


def test_every_package_has_a_layer():
    missing = {package_of(m) for m in MODULES} - set(RANK) - {"deepgen"}
    assert not missing, f"add these packages to LAYERS: {sorted(missing)}"


def test_layers_import_only_downward():
    bad = []
    for mod, targets in GRAPH.items():
        src = package_of(mod)
        if src == "deepgen":  # the package facade (lazy names only)
            continue
        for t in targets:
            dst = package_of(t)
            if dst == src:
                continue
            if dst == "deepgen" or RANK[dst] >= RANK[src]:
                bad.append(f"{mod} ({src}, layer {RANK[src]}) imports {t} ({dst}, layer {RANK.get(dst)})")
    assert not bad, "upward or sideways imports:\n" + "\n".join(sorted(bad))


def test_no_import_circles():
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(GRAPH[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    assert "deepgen.models.pretrained" in GRAPH["deepgen.models.base"]  # imported inside a method
    assert "deepgen.nets.conv" in GRAPH["deepgen.nets.resnet"]


_IMPORT_EACH = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for m in [k for k in sys.modules if k == "deepgen" or k.startswith("deepgen.")]:
        del sys.modules[m]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone():
    """Each module imported with no deepgen module loaded before it (one interpreter, purged between)."""
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH, *sorted(m for m in MODULES if m != "deepgen.__main__")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("mod", sorted(m for m in MODULES if m != "deepgen.__main__"))
def test_every_module_imports_in_a_fresh_interpreter(mod):
    proc = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_help_and_import_do_not_import_torch():
    code = ("import sys, deepgen, deepgen.cli\n"
            "try:\n    deepgen.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'lightning', 'numpy', 'matplotlib') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout[-500:] + proc.stderr[-2000:]
    assert "usage: deepgen" in proc.stdout


def test_every_model_declares_itself():
    from deepgen.models.base import CAPABILITIES, DENSITIES, GenerativeModel
    from deepgen.models.registry import list_models

    for name, cls in list_models().items():
        assert issubclass(cls, GenerativeModel) and cls.name == name
        assert cls.density in DENSITIES, name
        assert cls.objective in ("likelihood", "adversarial"), name
        assert set(cls.capabilities) <= set(CAPABILITIES), (name, set(cls.capabilities) - set(CAPABILITIES))
        assert ("log_prob" in cls.capabilities) == (cls.density != "none"), name
        assert cls.family and cls.description, name
        readme = (SRC.parent / "README.md").read_text()
        assert f"`{name}`" in readme, f"model {name} is not documented in README.md"
