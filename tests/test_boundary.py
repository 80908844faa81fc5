"""Nothing outside the rules reaches into a referee: code outside ``fraudarena_env/rules/`` reads a
match through ``rules.view.MatchView`` and changes it through the referee's verbs
(``rules.referee.PLAY``, plus the text face's entry points on ``fraudarena_env.Referee``).

How a referee object is recognised, statically, in a module (``RefereeReads.is_referee``):

* a name ``ref`` or ``referee``; a name assigned from a ``Referee(...)`` call; a parameter
  annotated ``Referee``; ``self`` in a class that subclasses ``Referee``;
* an attribute named ``referee``, ``ref``, ``_ref`` or ``_referee`` (``env.unwrapped.referee``,
  ``self._ref``, ``result.referee``);
* an item of ``referees`` (``self.referees[m]``);
* a name bound to any of these (``r = env.unwrapped.referee``, ``for r in self.referees``).

On such an expression, reading an attribute outside the surface is a violation, and so is any
write: assigning to an attribute (``ref.links = ...``), to an item of one
(``ref.verdict[s] = 1``), or calling a mutating method on one (``ref.links.append(...)``). The
one attribute a face may set is its own cache, ``narration``. ``getattr(ref, "name")`` counts as
reading ``name``.

Whatever the variable is called, the referee's storage (its ``MatchState``, the ad rows and which
row each slot holds) is named nowhere outside the rules but in the batched rules, ``vector.py``
and ``vector_end.py``, which step many matches on one ``MatchState`` of their own
(``test_the_match_state_is_read_only_by_the_rules``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fraudarena_env
from fraudarena_env import referee as text_referee
from fraudarena_env.rules.generator import AdRows
from fraudarena_env.rules.referee import PLAY
from fraudarena_env.rules.view import surface_names

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(fraudarena_env.__file__).resolve().parent
RULES = PACKAGE / "rules"
TEXT_FACE = frozenset(k for k in vars(text_referee.Referee) if not k.startswith("_"))
ALLOWED = surface_names() | frozenset(PLAY) | TEXT_FACE
WRITABLE = frozenset({"narration"})  # the text face's cache of its reading of the events
# Writes a test makes on purpose, each with its reason.
TEST_WRITES = {
    # a fault injected into one referee, to see the server answer it (then removed)
    ("tests/test_server.py", "build_fraudster_observation"),
}
REF_NAMES = frozenset({"ref", "referee"})
REF_ATTRS = frozenset({"referee", "ref", "_ref", "_referee"})
MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "update", "add",
                      "discard", "sort", "reverse", "fill", "setdefault", "resize", "put",
                      "itemset", "popitem", "difference_update", "intersection_update"})
# Tests of the rules themselves may read the referee's internals.
EXEMPT = {REPO / "tests" / "rules"}
# The batched rules: VectorFraudArena steps many matches on one MatchState of its own.
BATCHED_RULES = {PACKAGE / "vector.py", PACKAGE / "vector_end.py"}
# How a referee stores its match: named only in the rules and the batched rules.
STORAGE = frozenset({"match_state", "slot_row", "ep", "_scalar_row"})
ROW_FACTS = frozenset(AdRows.__dataclass_fields__)


def checked_files() -> list[Path]:
    out = [p for p in sorted(PACKAGE.rglob("*.py")) if RULES not in p.parents]
    for top in ("training", "benchmarks", "tests"):
        out += [p for p in sorted((REPO / top).rglob("*.py"))
                if not any(e == p or e in p.parents for e in EXEMPT)]
    return out


def _is_referee_type(node: ast.expr | None) -> bool:
    if node is None:
        return False
    text = ast.unparse(node).strip("'\"")
    return text.split(".")[-1].split(" ")[0] == "Referee"


class RefereeReads(ast.NodeVisitor):
    """Collects ``(line, attribute, what)`` for every referee attribute a module touches."""

    def __init__(self, tree: ast.Module):
        self.names = set(REF_NAMES)
        self.self_is_referee: set[int] = set()  # ids of FunctionDefs inside Referee subclasses
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                    _is_referee_type(node.value.func):
                self.names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                self.names.update(a.arg for a in args if _is_referee_type(a.annotation))
            elif isinstance(node, ast.ClassDef) and any(_is_referee_type(b) for b in node.bases):
                self.self_is_referee.update(id(f) for f in node.body
                                            if isinstance(f, ast.FunctionDef))
        for node in ast.walk(tree):  # an imported module named ``referee`` is no referee
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.names.difference_update((a.asname or a.name) for a in node.names)
        self._self_ok = False
        for _ in range(2):  # names bound to a referee (twice: aliases of aliases)
            for node in ast.walk(tree):
                if isinstance(node, ast.Assign) and self.is_referee(node.value):
                    self.names.update(t.id for t in node.targets if isinstance(t, ast.Name))
                elif isinstance(node, (ast.For, ast.comprehension)) and \
                        isinstance(node.target, ast.Name) and self._iterates_referees(node.iter):
                    self.names.add(node.target.id)
        self.found: list[tuple[int, str, str]] = []

    def is_referee(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.names or (node.id == "self" and self._self_ok)
        if isinstance(node, ast.Attribute):
            return node.attr in REF_ATTRS
        if isinstance(node, ast.Subscript):
            v = node.value
            return (isinstance(v, ast.Name) and v.id == "referees") or \
                (isinstance(v, ast.Attribute) and v.attr == "referees")
        return False

    @staticmethod
    def _iterates_referees(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id == "referees") or \
            (isinstance(node, ast.Attribute) and node.attr == "referees")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer = self._self_ok
        self._self_ok = id(node) in self.self_is_referee
        self.generic_visit(node)
        self._self_ok = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def referee_attribute(self, node: ast.expr) -> ast.Attribute | None:
        """The ``ref.x`` at the bottom of ``ref.x``, ``ref.x[i]``, ``ref.x[i][j]``."""
        while isinstance(node, ast.Subscript):
            node = node.value
        if isinstance(node, ast.Attribute) and self.is_referee(node.value):
            return node
        return None

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self.is_referee(node.value):
            if node.attr not in ALLOWED:
                self.found.append((node.lineno, node.attr, "reads an internal"))
            elif not isinstance(node.ctx, ast.Load) and node.attr not in WRITABLE:
                self.found.append((node.lineno, node.attr, "writes"))
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load):
            target = self.referee_attribute(node)
            if target is not None:
                self.found.append((node.lineno, target.attr, "writes an item of"))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("getattr", "setattr", "delattr") and \
                len(node.args) >= 2 and self.is_referee(node.args[0]) and \
                isinstance(node.args[1], ast.Constant):
            name = node.args[1].value
            if name not in ALLOWED or (func.id != "getattr" and name not in WRITABLE):
                self.found.append((node.lineno, name, f"{func.id}s"))
        if isinstance(func, ast.Attribute) and func.attr in MUTATORS:
            target = self.referee_attribute(func.value)
            if target is not None and target.attr not in WRITABLE:
                self.found.append((node.lineno, target.attr, f"calls .{func.attr}() on"))
        self.generic_visit(node)


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    reads = RefereeReads(tree)
    reads.visit(tree)
    rel = path.relative_to(REPO)
    return [f"{rel}:{line}: {what} referee.{attr}" for line, attr, what in reads.found
            if (rel.as_posix(), attr) not in TEST_WRITES]


def test_outside_code_reads_a_match_only_through_the_view():
    found = [v for p in checked_files() for v in violations(p)]
    assert not found, ("code outside the rules reaches into a referee; read through "
                       "rules.view.MatchView, change through Referee.PLAY:\n" + "\n".join(found))


@pytest.mark.parametrize("source, attr", [
    ("def f(ref):\n    return ref.rows.label[0]\n", "rows"),
    ("def f(x: Referee):\n    return x.slot_row[0]\n", "slot_row"),
    ("def f(env):\n    return env.unwrapped.referee.match_state\n", "match_state"),
    ("def f(self, m):\n    return self.referees[m].ep.n_base\n", "ep"),
    ("def f(ref):\n    ref.verdict[3] = 1\n", "verdict"),
    ("def f(ref):\n    ref.links = []\n", "links"),
    ("def f(ref):\n    ref.totals[0] += 1.0\n", "totals"),
    ("def f(self):\n    self._ref.links.append((0, 1))\n", "links"),
    ("class R(Referee):\n    def f(self):\n        return self.changes[0], self.ep\n", "ep"),
    ("def f(env):\n    r = env.unwrapped.referee\n    return r.rows\n", "rows"),
    ("def f(self):\n    return [r.ep for r in self.referees]\n", "ep"),
    ("def f(ref):\n    return getattr(ref, 'match_state')\n", "match_state"),
])
def test_the_check_catches_a_reach_into_the_referee(source, attr):
    tree = ast.parse(source)
    reads = RefereeReads(tree)
    reads.visit(tree)
    assert attr in {a for _, a, _ in reads.found}, reads.found


def storage_reads(path: Path) -> list[str]:
    """Where ``path`` names the referee's storage: an attribute in ``STORAGE``, a fact of the ad
    rows (``x.rows.label``), or ``MatchState`` imported."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and (
                node.attr in STORAGE or (node.attr in ROW_FACTS and
                                         isinstance(node.value, ast.Attribute) and
                                         node.value.attr == "rows")):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and any(a.name == "MatchState" for a in node.names):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: imports MatchState")
    return found


def test_the_match_state_is_read_only_by_the_rules():
    own = {Path(__file__).resolve()}  # this file names the storage to plant violations
    found = [v for p in checked_files() if p not in BATCHED_RULES | own
             for v in storage_reads(p)]
    assert not found, ("the referee's storage is named outside the rules; read through "
                       "rules.view.MatchView:\n" + "\n".join(found))


def test_the_surface_reads_the_match_without_internals():
    """Every name of the surface exists on a referee of a started match."""
    from fraudarena_env.rules.referee import Referee
    ref = Referee()
    ref.reset_match(3, "task_3")
    missing = [n for n in surface_names() if not hasattr(ref, n)]
    assert not missing
    assert not {"rows", "slot_row", "ep", "match_state", "index"} & surface_names()
