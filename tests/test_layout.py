"""The package's layout: imports flow one way through its layers, and every path the docs and the
scripts name can be imported.

Layers, bottom to top (docs/layout.md): the rules, the pydantic models, the faces, the
``Referee`` users get (rules plus text face), the policies, the env, then everything built on it
(arena, skill suite, server, client, CLI, training adapters). A module may import its own layer
and the layers below it, never one above.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import sys
from pathlib import Path

import pytest

import fraudarena_env

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(fraudarena_env.__file__).resolve().parent
LAYERS = [  # bottom first: (name, module prefixes)
    ("rules", ("fraudarena_env.rules",)),
    ("models", ("fraudarena_env.models",)),
    ("faces", ("fraudarena_env.faces",)),
    ("referee", ("fraudarena_env.referee",)),
    ("policies", ("fraudarena_env.policies",)),
    ("env", ("fraudarena_env.env", "fraudarena_env.fraudarena_v0", "fraudarena_env.role_env",
             "fraudarena_env.wrappers", "fraudarena_env.vector", "fraudarena_env.vector_end")),
    ("tools", ("fraudarena_env",)),  # arena, skill, bench, archive, server, client, cli, sb3, ...
]
# Upward imports allowed on purpose, each with its reason.
EXCEPTIONS = {
    # FirstSightClassifier fits itself, on first use, on matches played through the arena.
    ("fraudarena_env.policies.references", "fraudarena_env.skill"),
}
# Third-party packages each layer may import (the standard library is always allowed).
THIRD_PARTY = {"rules": {"numpy"}, "models": {"pydantic"}, "faces": {"numpy", "pydantic"},
               "referee": set(), "policies": {"numpy"}}
OLD_ALIASES = {"fraudarena_env.catalog"}  # kept for scripts; the package itself uses new paths


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer")


def imports_of(module: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``module``, function-level ones included;
    package modules resolve to the submodule when a name is one."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if sub in MODULES else target, node.lineno))
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_down_the_layers(module):
    rank = layer_of(module)
    upward = [f"line {line}: {target} ({LAYERS[layer_of(target)][0]})"
              for target, line in imports_of(module)
              if target.startswith("fraudarena_env.") and target in MODULES
              and layer_of(target) > rank and (module, target) not in EXCEPTIONS]
    assert not upward, f"{module} ({LAYERS[rank][0]}) imports from a layer above it: {upward}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) < len(LAYERS) - 2))
def test_lower_layers_import_no_framework(module):
    """The rules, models, faces and policies never import gymnasium, PettingZoo or the web
    stack, so they can be tested and timed alone."""
    allowed = THIRD_PARTY[LAYERS[layer_of(module)][0]]
    third_party = {target.split(".")[0] for target, _ in imports_of(module)} - \
        set(sys.stdlib_module_names) - {"fraudarena_env", "__future__"}
    assert third_party <= allowed, f"{module} imports {sorted(third_party - allowed)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_package_uses_new_paths_not_the_old_aliases(module):
    used = {target for target, _ in imports_of(module)} & OLD_ALIASES
    assert not used or module in OLD_ALIASES, f"{module} imports {used}"


def test_every_module_says_what_it_is_for_and_each_layer_what_it_may_import():
    for name, path in MODULES.items():
        assert ast.get_docstring(ast.parse(path.read_text())), f"{name} has no docstring"
        if path.name == "__init__.py" and name != "fraudarena_env":
            assert "import" in ast.get_docstring(ast.parse(path.read_text())), name


CORE_LIMITS = {"class": 400, "function": 80}  # lines, in the rules core and the faces


def oversized(path: Path) -> list[str]:
    """The classes and functions of ``path`` longer than ``CORE_LIMITS`` allows."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        kind = ("class" if isinstance(node, ast.ClassDef) else "function"
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None)
        if kind and node.end_lineno - node.lineno + 1 > CORE_LIMITS[kind]:
            found.append(f"{kind} {node.name} (line {node.lineno}): "
                         f"{node.end_lineno - node.lineno + 1} lines")
    return found


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) in (0, 2)))
def test_the_rules_and_faces_keep_classes_and_functions_short(module):
    """In rules/ and faces/ no class runs over 400 lines and no function over 80: a rule is
    read in one place, not hunted through a long body."""
    assert not oversized(MODULES[module]), f"{module}: {oversized(MODULES[module])}"


def test_the_size_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n")
    assert oversized(tmp_path / "long.py") == ["function long (line 1): 82 lines"]


# ----------------------------------------------------------------------------- public paths
# What DESIGN (kept outside the repo) names as public API.
DESIGN_NAMES = [
    "fraudarena_env.fraudarena_v0.env", "fraudarena_env.fraudarena_v0.raw_env",
    "fraudarena_env.Referee", "fraudarena_env.RoleEnv", "fraudarena_env.IllegalActionError",
    *(f"fraudarena_env.models.{n}" for n in (
        "FraudsterAction", "FraudsterObservation", "AdReviewAction", "AdReviewObservation",
        "InvestigatorAction", "InvestigatorObservation", "AuditorAction", "AuditorObservation",
        "AuditReport", "RefereeState")),
    *(f"fraudarena_env.policies.{n}" for n in (
        "ScriptedInvestigator", "ReactiveFraudster", "HeuristicAuditor", "RandomPolicy")),
]
DOCS = ["README.md", "training/README.md", "training/RESULTS.md",
        *(str(p.relative_to(REPO)) for p in sorted((REPO / "docs").rglob("*.md"))),
        *(str(p.relative_to(REPO)) for p in sorted((REPO / "notebooks").glob("*.ipynb")))]
SCRIPTS = [str(p.relative_to(REPO)) for p in sorted([*(REPO / "training").glob("*.py"),
                                                     *(REPO / "benchmarks").glob("*.py")])]


def doc_text(name: str) -> str:
    text = (REPO / name).read_text()
    if name.endswith(".ipynb"):
        text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
    return text


def named_paths() -> set[str]:
    """Every ``fraudarena_env.x.y`` the docs, notebooks and scripts name, and every name they
    import from the package."""
    paths = set(DESIGN_NAMES)
    for name in DOCS:
        text = doc_text(name)
        paths |= set(re.findall(r"\bfraudarena_env(?:\.[A-Za-z_]\w*)+", text))
        for module, names in re.findall(r"from (fraudarena_env[\w.]*) import ([\w, ]+)", text):
            paths |= {f"{module}.{n.strip()}" for n in names.split(",") if n.strip()}
    for name in SCRIPTS:
        for node in ast.walk(ast.parse(doc_text(name))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "fraudarena_env"):
                paths |= {f"{node.module}.{a.name}" for a in node.names}
    return paths


def resolve(path: str):
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("fraudarena_env"):
                pytest.skip(f"{path} needs {exc.name} (an optional extra)")
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(path)


@pytest.mark.parametrize("path", sorted(named_paths()))
def test_every_path_the_docs_and_scripts_name_imports(path):
    assert resolve(path) is not None


def test_every_repository_file_the_docs_name_exists():
    pattern = (r"(?<![\w/.])(?:fraudarena_env|tests|training|benchmarks|notebooks|docs)/"
               r"[\w/.-]+\.(?:py|ipynb|md|zip)")
    missing = {(name, f) for name in DOCS for f in re.findall(pattern, doc_text(name))
               if not (REPO / f).exists()}
    assert not missing


def test_every_docs_page_is_in_the_site_and_every_site_page_exists_or_is_coming():
    """mkdocs.yml's nav lists every page under docs/; the two pages another branch writes
    (conventions.md, replay.md) may be named before they land."""
    nav = set(re.findall(r":\s*([\w/-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.M))
    pages = {str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md")}
    assert pages <= nav
    assert nav - pages <= {"conventions.md", "replay.md"}


def test_old_paths_are_the_new_modules():
    from fraudarena_env import catalog, referee
    from fraudarena_env.rules import catalog as rules_catalog
    from fraudarena_env.rules import referee as rules_referee

    assert catalog is rules_catalog
    assert fraudarena_env.Referee is referee.Referee
    assert issubclass(referee.Referee, rules_referee.Referee)
