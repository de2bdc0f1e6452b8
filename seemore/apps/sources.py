"""The demo apps' Kotlin and Swift sources read with tree-sitter: syntax errors, imports, contract keys.

Neither app can be compiled on Linux (no Android SDK, no Swift toolchain), so every source file
is at least parsed with the tree-sitter grammars from PyPI; the keys each app reads from a
contract are extracted from its parse tree (calls ``json.string("spec.layout")`` and the like
with one plain string literal) and compared with :data:`seemore.apps.rules.CONTRACT_KEYS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tree-sitter is a dev dependency: the path constants and jvm.py do without it
    from tree_sitter import Node, Parser, Tree

REPO = Path(__file__).resolve().parents[2]
ANDROID_APP = REPO / "android_demo"
IOS_APP = REPO / "ios_demo"
# The plain-Kotlin source set (no Android imports; compiled with kotlinc in the tests) and its JVM checker.
KOTLIN_LOGIC = ANDROID_APP / "app" / "src" / "logic" / "kotlin"
KOTLIN_LOGIC_CHECK = ANDROID_APP / "app" / "src" / "logicCheck" / "kotlin"
SWIFT_LOGIC = IOS_APP / "SeemoreDemo" / "Logic"
# How the contract readers of both apps take a key: json.<reader>("dotted.path").
CONTRACT_READERS = ("string", "int", "intList")


@lru_cache(maxsize=None)
def _parser(language: str) -> Parser:
    from tree_sitter import Language, Parser

    if language == "kotlin":
        import tree_sitter_kotlin as grammar
    elif language == "swift":
        import tree_sitter_swift as grammar  # type: ignore[no-redef]
    else:
        raise ValueError(f"no grammar for {language!r}")
    return Parser(Language(grammar.language()))


def parse(path: Path) -> Tree:
    """The parse tree of a ``.kt`` or ``.swift`` file."""
    return _parser("kotlin" if path.suffix == ".kt" else "swift").parse(path.read_bytes())


def syntax_errors(tree: Tree) -> list[str]:
    """``line: text`` of every ERROR or MISSING node (empty when the source parses cleanly)."""
    found: list[str] = []

    def visit(node: Node) -> None:
        if node.is_error or node.is_missing:
            found.append(f"{node.start_point[0] + 1}: {node.type} `{node.text.decode(errors='replace')[:60]}`")
            return
        for child in node.children:
            if child.has_error or child.is_missing:
                visit(child)

    if tree.root_node.has_error:
        visit(tree.root_node)
        if not found:
            found.append("1: error somewhere in the tree")
    return found


def kotlin_imports(tree: Tree) -> list[str]:
    """Fully qualified names of a Kotlin file's ``import`` lines."""
    return [child.text.decode() for node in tree.root_node.named_children if node.type == "import"
            for child in node.named_children if child.type == "qualified_identifier"]


def _kotlin_literal(arguments: Node) -> str | None:
    """The single plain string literal argument of a call (no interpolation), else None."""
    args = [a for a in arguments.named_children if a.type == "value_argument"]
    if len(args) != 1 or len(args[0].named_children) != 1 or args[0].named_children[0].type != "string_literal":
        return None
    parts = args[0].named_children[0].named_children
    if len(parts) != 1 or parts[0].type != "string_content" or "$" in parts[0].text.decode():
        return None
    return parts[0].text.decode()


def kotlin_literal_calls(tree: Tree, receiver: str, methods: Iterable[str]) -> list[tuple[str, str | None]]:
    """Every ``receiver.method(...)`` call in a Kotlin file: (method, key), key None unless one plain literal."""
    wanted, found = set(methods), []

    def visit(node: Node) -> None:
        if node.type == "call_expression" and len(node.named_children) == 2:
            callee, arguments = node.named_children
            if callee.type == "navigation_expression" and arguments.type == "value_arguments":
                parts = callee.named_children
                if (len(parts) == 2 and parts[0].text.decode() == receiver and parts[1].type == "identifier"
                        and parts[1].text.decode() in wanted):
                    found.append((parts[1].text.decode(), _kotlin_literal(arguments)))
        for child in node.named_children:
            visit(child)

    visit(tree.root_node)
    return found


def app_sources(root: Path, suffix: str) -> list[Path]:
    """Every source file of one kind under an app folder, build outputs excluded."""
    skip = {"build", ".gradle", "DerivedData", ".build"}
    return sorted(p for p in root.rglob(f"*{suffix}") if not skip & set(p.relative_to(root).parts))
