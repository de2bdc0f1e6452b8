"""Evaluate a small subset of Swift over its tree-sitter parse tree, so the iOS app's tile math runs here.

There is no Swift toolchain on Linux CI, but the iOS app's plain Swift files
(``ios_demo/SeemoreDemo/Logic``: tile plan, pixel packing, blend, memory) must agree with
:mod:`seemore.apps.rules`. They are written in a deliberately small subset of Swift 5 that this
module parses with ``tree-sitter-swift`` and interprets, with Swift's semantics where they differ
from Python's: ``Int`` is 64-bit and traps on overflow, ``/`` truncates toward zero and ``%`` keeps
the dividend's sign, ``Float`` arithmetic rounds to float32 (numpy), ``min``/``max`` pick like
the Swift standard library, arrays and structs are values, ranges and subscripts trap out of
bounds. Syntax outside the subset raises :class:`SwiftSubsetError` naming the node type and
line, so the subset stays enforced. What is supported (see :data:`SUBSET`):

* top level: ``import``, ``func`` (labels, ``_``, ``throws``), ``struct`` (stored ``let``/``var``
  properties, computed properties, memberwise init), ``enum`` with raw values, ``final class``
  (stored properties with defaults, one ``init``, methods), ``let`` constants;
* statements: ``let``/``var`` (optional type annotation, tuple destructuring), assignment and
  ``+= -= *= /= %=`` to variables, properties and array elements, ``if``/``else if``/``else``,
  ``if let``, ``guard``/``guard let``, ``while``, ``for x in a..<b`` / ``a...b`` / arrays,
  ``return``, ``break``, ``continue``, ``throw``;
* expressions: Int/Float/Bool/String literals (interpolation), ``nil``, ``+ - * / %``,
  comparisons, ``== !=``, ``&& || !``, ``?:``, ``??``, unary ``-``, tuples with labels (``.label``,
  ``.0``), array literals, ``[T](repeating:count:)``, ``.count``, ``.isEmpty``, ``.append``,
  subscripts, struct/class initialisers with labels, property access, ``.case`` / ``Enum.case`` /
  ``.rawValue`` / ``Enum(rawValue:)``, ``min``/``max`` (variadic), ``Float(x)``, ``Int(x)``,
  ``UInt8(x)``, ``x.rounded(.rule)``, ``.isNaN``, ``Int.max``/``Int.min``, ``precondition``, ``try``.

tree-sitter-swift does not group binary operators by Swift's precedence (``a == b && c`` comes
out as ``a == (b && c)``), so every operator chain is flattened back to its source order and
re-associated with Swift's precedence groups here.

Swift compile errors that this evaluator can see are raised as :class:`SwiftSubsetError` too:
mixing ``Int`` and ``Float`` without a conversion, assigning to a ``let``, calling a throwing
function without ``try``, an untyped float literal (Swift would make it a ``Double``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import tree_sitter_swift
from tree_sitter import Language, Node, Parser, Tree

from seemore.apps.sources import syntax_errors  # noqa: F401  (re-exported: the Swift checks use it)

SUBSET = __doc__

INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
_COMMENTS = frozenset({"comment", "multiline_comment"})


# ----------------------------------------------------------------------------------------- errors


class SwiftSubsetError(Exception):
    """Source outside the subset, or a Swift compile error the evaluator sees; names node type and line."""


class SwiftTrap(RuntimeError):
    """What a Swift program would crash with: overflow, index out of range, a failed precondition."""


class SwiftThrow(Exception):
    """A Swift ``throw`` that reached Python; ``value`` is the thrown struct (e.g. ``AppRuleError``)."""

    def __init__(self, value: Any) -> None:
        message = value.fields.get("message") if isinstance(value, Record) else None
        super().__init__(message if isinstance(message, str) else describe(value))
        self.value = value


def _where(node: Node, file: str) -> str:
    return f"{file}:{node.start_point[0] + 1}"


def _unsupported(node: Node, file: str, what: str = "") -> SwiftSubsetError:
    text = node.text.decode(errors="replace").split("\n")[0][:60] if node.text else ""
    detail = f" ({what})" if what else ""
    return SwiftSubsetError(f"{node.type} at {_where(node, file)} is outside the Swift subset{detail}: `{text}`")


# ----------------------------------------------------------------------------------------- parsing


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_swift.language()))


def parse_swift(source: bytes | str) -> Tree:
    """The tree-sitter parse tree of Swift source."""
    return _parser().parse(source.encode() if isinstance(source, str) else source)


def imports(tree: Tree) -> list[str]:
    """Module names of the top-level ``import`` declarations."""
    names = []
    for node in tree.root_node.named_children:
        if node.type == "import_declaration":
            names.append(node.text.decode().split(None, 1)[1].strip())
    return names


def string_literal_calls(tree: Tree, receiver: str, methods: Iterable[str]) -> list[tuple[str, str | None]]:
    """Every ``receiver.method(...)`` call: (method, key) with key the single plain string literal argument, else None."""
    wanted = set(methods)
    found: list[tuple[str, str | None]] = []

    def visit(node: Node) -> None:
        if node.type == "call_expression" and node.named_child_count == 2:
            callee, suffix = node.named_children
            if callee.type == "navigation_expression":
                target = callee.child_by_field_name("target")
                name = callee.child_by_field_name("suffix")
                name = name.child_by_field_name("suffix") if name is not None else None
                if (target is not None and target.type == "simple_identifier" and target.text.decode() == receiver
                        and name is not None and name.text.decode() in wanted):
                    found.append((name.text.decode(), _literal_argument(suffix)))
        for child in node.named_children:
            visit(child)

    visit(tree.root_node)
    return found


def _literal_argument(suffix: Node) -> str | None:
    args = [c for c in _named(suffix.named_children[0]) if c.type == "value_argument"] if suffix.named_children else []
    if len(args) != 1 or args[0].child_by_field_name("name") is not None:
        return None
    value = args[0].child_by_field_name("value")
    if value is None or value.type != "line_string_literal":
        return None
    parts = [c for c in value.named_children]
    if any(p.type != "line_str_text" for p in parts):
        return None
    return "".join(p.text.decode() for p in parts)


def _kids(node: Node) -> list[Node]:
    """All children (named or not) except comments."""
    return [c for c in node.children if c.type not in _COMMENTS]


def _named(node: Node | Iterable[Node]) -> list[Node]:
    children = node.named_children if isinstance(node, Node) else node
    return [c for c in children if c.type not in _COMMENTS]


# ----------------------------------------------------------------------------------------- values


class IntLiteral(int):
    """An integer literal whose type its context decides (Int, Float or UInt8)."""


class RealLiteral(float):
    """A floating-point literal whose type its context decides (Float here; Double when nothing does)."""


class U8(int):
    """A Swift ``UInt8``."""


class SwiftArray(list):
    """A Swift array: a list that knows its element type (for literals appended or stored into it)."""

    __slots__ = ("elem",)

    def __init__(self, elem: Any, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        self.elem = elem


class SwiftTuple(tuple):
    """A Swift tuple; labelled items are also attributes and keys (``t.lo``, ``t["lo"]``)."""

    labels: tuple[str | None, ...]

    def __new__(cls, items: Iterable[Any], labels: Sequence[str | None]) -> "SwiftTuple":
        self = super().__new__(cls, items)
        self.labels = tuple(labels)
        return self

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self.labels.index(name)]
        except ValueError:
            raise AttributeError(name) from None

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return self.__getattr__(key)
        return super().__getitem__(key)


@dataclass(frozen=True)
class EnumValue:
    """A case of a Swift enum (``raw`` is its raw value, or None)."""

    type: str
    case: str
    raw: Any

    def __repr__(self) -> str:
        return f"{self.type}.{self.case}"


class Record:
    """A struct value (immutable here: the subset has no mutating struct members)."""

    __slots__ = ("type", "fields")

    def __init__(self, type_name: str, fields: dict[str, Any]) -> None:
        self.type = type_name
        self.fields = fields

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and other.type == self.type and other.fields == self.fields

    def __hash__(self) -> int:
        return hash((self.type, tuple(self.fields)))

    def __repr__(self) -> str:
        return f"{self.type}({', '.join(f'{k}: {v!r}' for k, v in self.fields.items())})"


class Instance:
    """A class instance (reference semantics); ``call`` runs one of its methods from Python."""

    __slots__ = ("type", "fields", "program")

    def __init__(self, type_name: str, program: "SwiftProgram") -> None:
        self.type = type_name
        self.fields: dict[str, Any] = {}
        self.program = program

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a method with Python arguments (converted to the declared parameter types)."""
        return self.program.call_method(self, method, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.type} instance>"


def describe(value: Any, program: "SwiftProgram | None" = None) -> str:
    """The value as Swift's string interpolation writes it.

    Structs and classes with a computed ``description`` (CustomStringConvertible) use it when
    ``program`` is given; other structs print as ``Name(field: value)``.
    """
    if isinstance(value, (Record, Instance)) and program is not None:
        decl = program.types.get(value.type)
        if decl is not None and "description" in decl.computed:
            return str(program._property(value, "description", f"describing a {value.type}"))
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, np.float32):
        if np.isnan(value):
            return "nan"
        if np.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(float(value)) if float(value).is_integer() and abs(value) < 1e16 else str(value)
        return text
    if isinstance(value, str):
        return value
    if isinstance(value, EnumValue):
        return value.case
    if isinstance(value, Record):
        shown = (f'"{v}"' if isinstance(v, str) else describe(v, program) for v in value.fields.values())
        return f"{value.type}({', '.join(f'{k}: {v}' for k, v in zip(value.fields, shown))})"
    if isinstance(value, SwiftTuple):
        items = [f"{lab}: {describe(v, program)}" if lab else describe(v, program) for lab, v in zip(value.labels, value)]
        return f"({', '.join(items)})"
    if isinstance(value, list):
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else describe(v, program) for v in value) + "]"
    return str(int(value)) if isinstance(value, int) else str(value)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "Bool"
    if type(value) is IntLiteral:
        return "integer literal"
    if type(value) is RealLiteral:
        return "float literal"
    if type(value) is U8:
        return "UInt8"
    if isinstance(value, int):
        return "Int"
    if isinstance(value, np.float32):
        return "Float"
    if isinstance(value, str):
        return "String"
    if isinstance(value, (Record, Instance, EnumValue)):
        return value.type
    if isinstance(value, SwiftTuple):
        return "tuple"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, range):
        return "Range"
    if value is None:
        return "nil"
    return type(value).__name__


# ----------------------------------------------------------------------------------------- types

# A type is a str ("Int", "Float", "Bool", "String", "UInt8", "Void" or a declared type's name)
# or a tuple: ("array", T), ("opt", T), ("tuple", ((label, T), ...)).
SwiftType = Any


def _parse_type(node: Node, file: str) -> SwiftType:
    kind = node.type
    if kind == "user_type":
        parts = _named(node)
        if len(parts) != 1 or parts[0].type != "type_identifier":
            raise _unsupported(node, file, "generic or nested type")
        return parts[0].text.decode()
    if kind == "optional_type":
        return ("opt", _parse_type(node.child_by_field_name("wrapped"), file))
    if kind == "array_type":
        return ("array", _parse_type(node.child_by_field_name("name"), file))
    if kind == "tuple_type":
        items = []
        for item in _named(node):
            if item.type != "tuple_type_item":
                raise _unsupported(item, file)
            parts = _named(item)
            if len(parts) == 2 and parts[0].type == "simple_identifier":
                items.append((parts[0].text.decode(), _parse_type(parts[1], file)))
            elif len(parts) == 1:
                items.append((None, _parse_type(parts[0], file)))
            else:
                raise _unsupported(item, file)
        if not items:
            return "Void"
        return ("tuple", tuple(items))
    raise _unsupported(node, file, "type")


def _show_type(t: SwiftType) -> str:
    if isinstance(t, str):
        return t
    if t[0] == "array":
        return f"[{_show_type(t[1])}]"
    if t[0] == "opt":
        return f"{_show_type(t[1])}?"
    return "(" + ", ".join(f"{lab}: {_show_type(x)}" if lab else _show_type(x) for lab, x in t[1]) + ")"


def _int_to_float(value: int) -> np.float32:
    """Int to Float rounded once to nearest-even (like Swift's ``Float(_: Int)``)."""
    if abs(value) <= (1 << 53):
        return np.float32(float(value))
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    shift = magnitude.bit_length() - 24
    mantissa, rest = magnitude >> shift, magnitude & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if rest > half or (rest == half and mantissa & 1):
        mantissa += 1
    with np.errstate(over="ignore"):
        return np.float32(sign * math.ldexp(float(mantissa), shift))


def _check_int(value: int, what: str) -> int:
    if value < INT_MIN or value > INT_MAX:
        raise SwiftTrap(f"arithmetic overflow in {what}")
    return value


# ----------------------------------------------------------------------------------------- declarations


@dataclass
class _Param:
    label: str | None  # external label; None for `_`
    name: str
    type: SwiftType


@dataclass
class _Func:
    name: str
    params: list[_Param]
    returns: SwiftType
    throws: bool
    body: Node | None
    file: str
    node: Node
    owner: "_TypeDecl | None" = None
    is_init: bool = False
    compiled: "_Compiled | None" = None

    @property
    def labels(self) -> tuple[str | None, ...]:
        return tuple(p.label for p in self.params)

    @property
    def signature(self) -> str:
        base = "init" if self.is_init else self.name
        return f"{base}({''.join((p.label or '_') + ':' for p in self.params)})"


@dataclass
class _Stored:
    name: str
    mutable: bool
    type: SwiftType | None
    default: Node | None


@dataclass
class _TypeDecl:
    kind: str  # struct, class, enum
    name: str
    file: str
    node: Node
    stored: list[_Stored] = field(default_factory=list)
    computed: dict[str, tuple[SwiftType, Node]] = field(default_factory=dict)
    inits: list[_Func] = field(default_factory=list)
    methods: dict[str, list[_Func]] = field(default_factory=dict)
    cases: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Global:
    name: str
    type: SwiftType | None
    value: Node
    file: str
    evaluated: bool = False
    result: Any = None


@dataclass
class _Compiled:
    run: Callable[[list[Any]], Any]
    nslots: int
    param_coerce: list[Callable[[Any], Any]]
    ret_slot: int
    self_slot: int | None


_RETURN, _BREAK, _CONTINUE = object(), object(), object()
_UNSET = object()


# ----------------------------------------------------------------------------------------- coercion


def _coerce(value: Any, t: SwiftType, what: str) -> Any:
    """``value`` as Swift type ``t``: literals take the type; anything else must already have it."""
    vt = type(value)
    if t == "Int":
        if vt is int:
            return value
        if vt is IntLiteral:
            return int(value)
    elif t == "Float":
        if vt is np.float32:
            return value
        if vt is IntLiteral:
            return _int_to_float(int(value))
        if vt is RealLiteral:
            return np.float32(float(value))
    elif t == "UInt8":
        if vt is U8:
            return value
        if vt is IntLiteral:
            if 0 <= value <= 255:
                return U8(value)
            raise SwiftSubsetError(f"integer literal {int(value)} overflows UInt8 in {what}")
    elif t == "Bool":
        if vt is bool:
            return value
    elif t == "String":
        if vt is str:
            return value
    elif t == "Void":
        if value is None:
            return None
    elif isinstance(t, tuple):
        if t[0] == "opt":
            return None if value is None else _coerce(value, t[1], what)
        if t[0] == "array":
            if isinstance(value, list):
                if isinstance(value, SwiftArray) and value.elem == t[1]:
                    return _copy(value)
                return SwiftArray(t[1], (_coerce(v, t[1], what) for v in value))
        elif t[0] == "tuple" and isinstance(value, SwiftTuple) and len(value) == len(t[1]):
            labels = [lab for lab, _ in t[1]]
            if any(a is not None and b is not None and a != b for a, b in zip(labels, value.labels)):
                raise SwiftSubsetError(f"tuple labels {value.labels} are not {tuple(labels)} in {what}")
            return SwiftTuple((_coerce(v, it, what) for v, (_, it) in zip(value, t[1])), labels)
    elif isinstance(value, (Record, Instance, EnumValue)) and value.type == t:
        return value
    if vt is RealLiteral and t == "Int":
        raise SwiftSubsetError(f"float literal {float(value)} where Int is expected in {what}")
    raise SwiftSubsetError(f"{_type_name(value)} where {_show_type(t)} is expected in {what} "
                           "(Swift converts nothing implicitly)")


def _copy(value: Any) -> Any:
    """Value semantics of arrays: a fresh copy (nested arrays too)."""
    if isinstance(value, SwiftArray):
        if value and isinstance(value[0], list):
            return SwiftArray(value.elem, (_copy(v) for v in value))
        return SwiftArray(value.elem, value)
    return value


def _settle(value: Any, what: str) -> Any:
    """The type an unannotated ``let``/``var`` gets: integer literals become Int, float literals are refused."""
    vt = type(value)
    if vt is IntLiteral:
        return int(value)
    if vt is RealLiteral:
        raise SwiftSubsetError(f"untyped float literal in {what}: Swift would make it a Double; annotate it as Float")
    if vt is SwiftArray:
        if value.elem is None:
            raise SwiftSubsetError(f"empty array literal without a type in {what}")
        return _copy(value)
    return value


def _store_like(value: Any, old: Any, what: str) -> Any:
    """``value`` stored where ``old`` was (a variable without annotation keeps its first type)."""
    if old is _UNSET or old is None:
        return _settle(value, what)
    ot = type(old)
    if ot is int:
        return _coerce(value, "Int", what)
    if ot is np.float32:
        return _coerce(value, "Float", what)
    if ot is U8:
        return _coerce(value, "UInt8", what)
    if isinstance(old, SwiftArray):
        return _coerce(value, ("array", old.elem), what)
    if value is None or type(value) in (IntLiteral, RealLiteral):
        raise SwiftSubsetError(f"{_type_name(value)} stored into a {_type_name(old)} variable in {what}")
    if type(value) is not ot and not (isinstance(old, (Record, Instance, EnumValue))
                                      and getattr(value, "type", None) == old.type):
        raise SwiftSubsetError(f"{_type_name(value)} stored into a {_type_name(old)} variable in {what}")
    return value


def _infer_array(values: list[Any], what: str) -> SwiftArray:
    """An array literal without a contextual type: the element type of its (non-literal) elements."""
    kinds = {type(v) for v in values}
    if not values:
        raise SwiftSubsetError(f"empty array literal without a type in {what}")
    if kinds <= {IntLiteral}:
        return SwiftArray("Int", (int(v) for v in values))
    concrete = [v for v in values if type(v) not in (IntLiteral, RealLiteral)]
    if not concrete:
        raise SwiftSubsetError(f"array literal of float literals without a type in {what} (Swift: [Double])")
    first = concrete[0]
    if isinstance(first, (Record, Instance, EnumValue)):
        t: SwiftType = first.type
    elif isinstance(first, np.float32):
        t = "Float"
    elif type(first) is int:
        t = "Int"
    elif type(first) is U8:
        t = "UInt8"
    elif isinstance(first, bool):
        t = "Bool"
    elif isinstance(first, str):
        t = "String"
    elif isinstance(first, SwiftArray):
        t = ("array", first.elem)
    else:
        raise SwiftSubsetError(f"array literal of {_type_name(first)} without a type in {what}")
    return SwiftArray(t, (_coerce(v, t, what) for v in values))


# ----------------------------------------------------------------------------------------- operators


def _unify(a: Any, b: Any, op: str, what: str) -> tuple[str, Any, Any]:
    """The common numeric kind of two operands ('int', 'float', 'u8'); literals adapt to the other side."""
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return "int", a, b
    if ta is np.float32 and tb is np.float32:
        return "float", a, b
    if ta is np.float32 and tb in (IntLiteral, RealLiteral):
        return "float", a, _coerce(b, "Float", what)
    if tb is np.float32 and ta in (IntLiteral, RealLiteral):
        return "float", _coerce(a, "Float", what), b
    if ta is int and tb is IntLiteral or ta is IntLiteral and tb is int:
        return "int", int(a), int(b)
    if ta is U8 and tb in (U8, IntLiteral) or tb is U8 and ta is IntLiteral:
        return "u8", int(a), int(b)
    if ta in (IntLiteral, RealLiteral) and tb in (IntLiteral, RealLiteral):
        raise SwiftSubsetError(f"`{op}` of two literals in {what}: Swift types it by context; write one literal")
    raise SwiftSubsetError(f"`{op}` between {_type_name(a)} and {_type_name(b)} in {what} "
                           "(Swift needs an explicit conversion)")


def _int_div(a: int, b: int, what: str) -> int:
    if b == 0:
        raise SwiftTrap(f"division by zero in {what}")
    q = abs(a) // abs(b)
    return _check_int(q if (a < 0) == (b < 0) else -q, what)


def _int_rem(a: int, b: int, what: str) -> int:
    if b == 0:
        raise SwiftTrap(f"division by zero in remainder in {what}")
    if a == INT_MIN and b == -1:
        raise SwiftTrap(f"overflow in remainder in {what}")
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _arith(op: str, a: Any, b: Any, what: str) -> Any:
    if type(a) is int and type(b) is int:
        kind = "int"
    else:
        kind, a, b = _unify(a, b, op, what)
    if kind == "float":  # numpy warnings are off while a program runs (see SwiftProgram.call)
        if op == "+":
            return np.float32(a + b)
        if op == "-":
            return np.float32(a - b)
        if op == "*":
            return np.float32(a * b)
        if op == "/":
            return np.float32(a / b)
        raise SwiftSubsetError(f"`{op}` is not defined for Float in {what} (use truncatingRemainder)")
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif op == "/":
        r = _int_div(a, b, what)
    elif op == "%":
        r = _int_rem(a, b, what)
    else:  # pragma: no cover - the caller only passes the five
        raise SwiftSubsetError(f"operator {op} in {what}")
    if kind == "u8":
        if not 0 <= r <= 255:
            raise SwiftTrap(f"UInt8 arithmetic overflow in {what}")
        return U8(r)
    if r < INT_MIN or r > INT_MAX:
        raise SwiftTrap(f"arithmetic overflow in {what}")
    return r


def _compare(op: str, a: Any, b: Any, what: str) -> bool:
    if op in ("==", "!="):
        equal = _equal(a, b, what)
        return equal if op == "==" else not equal
    if not (type(a) is int and type(b) is int):
        if isinstance(a, str) and isinstance(b, str):
            pass
        else:
            _, a, b = _unify(a, b, op, what)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _equal(a: Any, b: Any, what: str) -> bool:
    if a is None or b is None:
        return a is b
    numeric = (int, np.float32, IntLiteral, RealLiteral, U8)
    if type(a) in numeric and type(b) in numeric:
        _, a, b = _unify(a, b, "==", what)
        return bool(a == b)
    if type(a) is not type(b):
        raise SwiftSubsetError(f"`==` between {_type_name(a)} and {_type_name(b)} in {what}")
    if isinstance(a, Instance):
        raise SwiftSubsetError(f"`==` on class instances in {what} (not Equatable)")
    return bool(a == b)


def _swift_min(values: list[Any], what: str) -> Any:
    values = _unify_all(values, "min", what)
    best = values[0]
    for v in values[1:]:
        if v < best:  # Swift: min(x, y) is `y < x ? y : x`
            best = v
    return best


def _swift_max(values: list[Any], what: str) -> Any:
    values = _unify_all(values, "max", what)
    best = values[0]
    for v in values[1:]:
        if v >= best:  # Swift: max(x, y) is `y >= x ? y : x`
            best = v
    return best


def _unify_all(values: list[Any], op: str, what: str) -> list[Any]:
    kinds = {type(v) for v in values}
    if kinds <= {int}:
        return values
    if np.float32 in kinds:
        return [_coerce(v, "Float", what) for v in values]
    if int in kinds:
        return [_coerce(v, "Int", what) for v in values]
    if U8 in kinds:
        return [_coerce(v, "UInt8", what) for v in values]
    raise SwiftSubsetError(f"`{op}` of {', '.join(sorted(_type_name(v) for v in values))} in {what}")


_ROUNDING = ("toNearestOrEven", "toNearestOrAwayFromZero", "down", "up", "towardZero", "awayFromZero")


def _rounded(value: np.float32, rule: str) -> np.float32:
    x = float(value)
    if math.isnan(x) or math.isinf(x):
        return value
    if rule == "toNearestOrEven":
        return np.float32(np.rint(value))
    if rule == "toNearestOrAwayFromZero":
        return np.float32(math.copysign(math.floor(abs(x) + 0.5), x))  # exact: float32 + 0.5 fits a double
    if rule == "down":
        return np.float32(math.floor(x))
    if rule == "up":
        return np.float32(math.copysign(math.ceil(x), x))
    if rule == "towardZero":
        return np.float32(math.copysign(math.trunc(x), x))
    return np.float32(math.copysign(math.ceil(abs(x)), x))


def _convert(target: str, value: Any, what: str) -> Any:
    """``Float(x)``, ``Int(x)``, ``UInt8(x)``: Swift's conversions, trapping where Swift traps."""
    vt = type(value)
    if target == "Float":
        if vt is np.float32:
            return value
        if vt in (int, IntLiteral, U8):
            return _int_to_float(int(value))
        if vt is RealLiteral:
            return np.float32(float(value))
    elif target in ("Int", "UInt8"):
        low, high = (INT_MIN, INT_MAX) if target == "Int" else (0, 255)
        if vt is np.float32:
            x = float(value)
            if math.isnan(x) or math.isinf(x):
                raise SwiftTrap(f"{target}({x}) in {what}: not a finite value")
            r = math.trunc(x)
        elif vt in (int, IntLiteral, U8):
            r = int(value)
        else:
            r = None
        if r is not None:
            if r < low or r > high:
                raise SwiftTrap(f"{target}({describe(value)}) in {what}: not representable")
            return U8(r) if target == "UInt8" else r
    raise SwiftSubsetError(f"{target}({_type_name(value)}) in {what} is outside the subset")


# Swift's precedence groups: (precedence, associativity)
_PRECEDENCE: dict[str, tuple[int, str]] = {
    "*": (150, "left"), "/": (150, "left"), "%": (150, "left"),
    "+": (140, "left"), "-": (140, "left"),
    "..<": (135, "none"), "...": (135, "none"),
    "??": (131, "right"),
    "<": (130, "none"), "<=": (130, "none"), ">": (130, "none"), ">=": (130, "none"),
    "==": (130, "none"), "!=": (130, "none"),
    "&&": (120, "left"), "||": (110, "left"),
    "?:": (100, "right"),
}
_BINARY_NODES = {
    "additive_expression", "multiplicative_expression", "comparison_expression", "equality_expression",
    "conjunction_expression", "disjunction_expression", "infix_expression", "nil_coalescing_expression",
    "range_expression", "ternary_expression",
}


@dataclass
class _Operand:
    """One operand of a chain: a node, then postfix suffixes (calls, members), then prefix operators."""

    node: Node
    prefixes: tuple[tuple[str, Node], ...] = ()  # innermost first
    suffixes: tuple[Node, ...] = ()  # call_suffix / navigation_suffix nodes, in order

    @property
    def plain(self) -> bool:
        return not self.prefixes and not self.suffixes


@dataclass
class _Operator:
    text: str
    node: Node
    middle: Node | None = None  # the `b` of `a ? b : c`


def _prefix_op(node: Node) -> str:
    op = node.child_by_field_name("operation")
    return "!" if op is not None and op.type == "bang" else (op.text.decode() if op is not None else "")


_CHAINABLE = _BINARY_NODES | {"prefix_expression", "call_expression", "navigation_expression"}


def _flatten(node: Node, out: list[Any], file: str) -> None:
    """Operands and operators of an operator chain in source order, tree-sitter's grouping dropped.

    tree-sitter-swift groups ``a == b && c`` as ``a == (b && c)``, ``-a * b`` as ``-(a * b)`` and
    ``2 * max(a, b)`` as ``(2 * max)(a, b)``: prefix operators are moved back onto the operand
    right after them and call/member suffixes onto the operand right before them.
    """
    kind = node.type
    if kind == "ternary_expression":
        _flatten(node.child_by_field_name("condition"), out, file)
        out.append(_Operator("?:", node, node.child_by_field_name("if_true")))
        _flatten(node.child_by_field_name("if_false"), out, file)
    elif kind == "nil_coalescing_expression":
        _flatten(node.child_by_field_name("value"), out, file)
        out.append(_Operator("??", node))
        _flatten(node.child_by_field_name("if_nil"), out, file)
    elif kind == "range_expression":
        _flatten(node.child_by_field_name("start"), out, file)
        out.append(_Operator(node.child_by_field_name("op").text.decode(), node))
        _flatten(node.child_by_field_name("end"), out, file)
    elif kind in _BINARY_NODES:
        lhs, op, rhs = (node.child_by_field_name(n) for n in ("lhs", "op", "rhs"))
        if lhs is None or op is None or rhs is None:
            raise _unsupported(node, file)
        _flatten(lhs, out, file)
        out.append(_Operator(op.text.decode(), op))
        _flatten(rhs, out, file)
    elif kind == "prefix_expression" and _prefix_op(node) in ("-", "!"):
        inner: list[Any] = []
        _flatten(node.child_by_field_name("target"), inner, file)
        if len(inner) == 1 and inner[0].plain:
            out.append(_Operand(node))
        else:  # the prefix binds to the first operand only
            first = inner[0]
            inner[0] = _Operand(first.node, first.prefixes + ((_prefix_op(node), node),), first.suffixes)
            out.extend(inner)
    elif kind in ("call_expression", "navigation_expression"):
        parts = _named(node)
        base = node.child_by_field_name("target") if kind == "navigation_expression" else parts[0]
        suffix = node.child_by_field_name("suffix") if kind == "navigation_expression" else parts[-1]
        inner = []
        _flatten(base, inner, file)
        if len(inner) == 1 and inner[0].plain:
            out.append(_Operand(node))
        else:  # the suffix belongs to the last operand only
            last = inner[-1]
            inner[-1] = _Operand(last.node, last.prefixes, last.suffixes + (suffix,))
            out.extend(inner)
    else:
        out.append(_Operand(node))


# ----------------------------------------------------------------------------------------- the program


class SwiftProgram:
    """The declarations of some Swift files; functions and initialisers callable from Python.

    Function bodies are compiled (checked against the subset) on their first call, or all at
    once by :meth:`check_all`.
    """

    def __init__(self, sources: Mapping[str, bytes | str], max_loop: int = 10_000_000) -> None:
        self.max_loop = max_loop  # iterations one `while` may run before it is taken for endless
        self.trees: dict[str, Tree] = {}
        self.functions: dict[str, list[_Func]] = {}
        self.types: dict[str, _TypeDecl] = {}
        self.globals: dict[str, _Global] = {}
        self.imports: dict[str, list[str]] = {}
        for name, source in sources.items():
            tree = parse_swift(source)
            errors = syntax_errors(tree)
            if errors:
                raise SwiftSubsetError(f"{name} does not parse: {errors[0]}")
            self.trees[name] = tree
            self.imports[name] = imports(tree)
            self._declare(tree.root_node, name)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> "SwiftProgram":
        """The program made of these ``.swift`` files."""
        return cls({Path(p).name: Path(p).read_bytes() for p in paths})

    # -- declarations --------------------------------------------------------------------------

    def _declare(self, root: Node, file: str) -> None:
        for node in _named(root):
            kind = node.type
            if kind == "import_declaration":
                continue
            if kind == "function_declaration":
                fn = self._function(node, file, None)
                self.functions.setdefault(fn.name, []).append(fn)
            elif kind == "class_declaration":
                decl = self._type(node, file)
                if decl.name in self.types:
                    raise SwiftSubsetError(f"type {decl.name} declared twice ({_where(node, file)})")
                self.types[decl.name] = decl
            elif kind == "property_declaration":
                name, mutable, t, value = self._binding(node, file)
                if mutable or value is None:
                    raise _unsupported(node, file, "top-level `var` or a constant without value")
                self.globals[name] = _Global(name, t, value, file)
            else:
                raise _unsupported(node, file, "top-level declaration")

    def _check_modifiers(self, node: Node, file: str) -> None:
        for child in _named(node):
            if child.type == "modifiers":
                for mod in _named(child):
                    text = mod.text.decode()
                    if text not in ("private", "fileprivate", "internal", "public", "final"):
                        raise _unsupported(mod, file, "modifier")
            elif child.type == "attribute":
                raise _unsupported(child, file, "attribute")

    def _function(self, node: Node, file: str, owner: _TypeDecl | None) -> _Func:
        self._check_modifiers(node, file)
        is_init = node.type == "init_declaration"
        name = "init" if is_init else node.child_by_field_name("name").text.decode()
        params: list[_Param] = []
        returns: SwiftType = "Void"
        throws = False
        body = None
        after_arrow = False
        for child in node.children:
            kind = child.type
            if kind in _COMMENTS or kind in ("func", "init", "(", ")", ",", "modifiers"):
                continue
            if kind == "simple_identifier" and not after_arrow and child.text.decode() == name:
                continue
            if kind == "parameter":
                params.append(self._parameter(child, file))
            elif kind == "throws":
                if child.text.decode() != "throws":
                    raise _unsupported(child, file)
                throws = True
            elif kind == "->":
                after_arrow = True
            elif kind == "function_body":
                body = child
            elif after_arrow and child.is_named:
                returns = _parse_type(child, file)
                after_arrow = False
            else:
                raise _unsupported(child, file, "in a function declaration")
        if body is None:
            raise _unsupported(node, file, "function without body")
        return _Func(name, params, returns, throws, body, file, node, owner, is_init)

    def _parameter(self, node: Node, file: str) -> _Param:
        idents: list[str] = []
        ptype = None
        seen_colon = False
        for child in node.children:
            if child.type == ":":
                seen_colon = True
            elif child.type == "simple_identifier" and not seen_colon:
                idents.append(child.text.decode())
            elif child.is_named and seen_colon and ptype is None:
                ptype = _parse_type(child, file)
            elif child.type not in _COMMENTS:
                raise _unsupported(child, file, "in a parameter (default values, inout, variadics)")
        if ptype is None or not 1 <= len(idents) <= 2:
            raise _unsupported(node, file, "parameter")
        label = idents[0] if idents[0] != "_" else None
        return _Param(label, idents[-1], ptype)

    def _binding(self, node: Node, file: str) -> tuple[Any, bool, SwiftType | None, Node | None]:
        """(name or tuple of names, mutable, annotation, value) of a simple ``let``/``var``."""
        self._check_modifiers(node, file)
        mutable = None
        names: Any = None
        annotation = None
        value = None
        for child in node.children:
            kind = child.type
            if kind == "value_binding_pattern":
                mutable = child.text.decode() == "var"
            elif kind == "pattern":
                if names is not None:
                    raise _unsupported(node, file, "several bindings in one declaration")
                names = self._pattern(child, file)
            elif kind == "type_annotation":
                annotation = _parse_type(child.child_by_field_name("name"), file)
            elif kind == "=":
                pass
            elif kind in ("modifiers", ";") or kind in _COMMENTS:
                pass
            elif child.is_named and value is None and names is not None and kind not in ("computed_property",):
                value = child
            else:
                raise _unsupported(child, file, "in a declaration")
        if mutable is None or names is None:
            raise _unsupported(node, file)
        return names, mutable, annotation, value

    def _pattern(self, node: Node, file: str) -> Any:
        parts = _named(node)
        if len(parts) == 1 and parts[0].type == "simple_identifier":
            return parts[0].text.decode()
        if parts and all(p.type == "pattern" for p in parts):
            return tuple(self._pattern(p, file) for p in parts)
        if len(parts) == 1 and parts[0].type == "wildcard_pattern":
            return "_"
        raise _unsupported(node, file, "pattern")

    def _type(self, node: Node, file: str) -> _TypeDecl:
        self._check_modifiers(node, file)
        kind = node.child_by_field_name("declaration_kind").text.decode()
        name = node.child_by_field_name("name").text.decode()
        if kind not in ("struct", "class", "enum"):
            raise _unsupported(node, file, kind)
        decl = _TypeDecl(kind, name, file, node)
        body = node.child_by_field_name("body")
        for member in _named(body):
            mk = member.type
            if mk == "property_declaration" and kind != "enum":
                computed = member.child_by_field_name("computed_value")
                if computed is not None:
                    ann = None
                    for child in member.children:
                        if child.type == "type_annotation":
                            ann = _parse_type(child.child_by_field_name("name"), file)
                    decl.computed[self._pattern(member.child_by_field_name("name"), file)] = (ann, computed)
                    continue
                names, mutable, ann, value = self._binding(member, file)
                if not isinstance(names, str):
                    raise _unsupported(member, file, "tuple pattern in a stored property")
                if ann is None and value is None:
                    raise _unsupported(member, file, "stored property without type")
                decl.stored.append(_Stored(names, mutable, ann, value))
            elif mk == "init_declaration" and kind == "class":
                if decl.inits:
                    raise _unsupported(member, file, "second initialiser")
                decl.inits.append(self._function(member, file, decl))
            elif mk == "function_declaration" and kind != "enum":
                fn = self._function(member, file, decl)
                decl.methods.setdefault(fn.name, []).append(fn)
            elif mk == "enum_entry" and kind == "enum":
                self._enum_entry(member, decl, file)
            else:
                raise _unsupported(member, file, f"member of {kind} {name}")
        if kind == "class" and not decl.inits:
            raise _unsupported(node, file, "class without init")
        return decl

    def _enum_entry(self, node: Node, decl: _TypeDecl, file: str) -> None:
        current = None
        for child in node.children:
            if child.type == "simple_identifier":
                current = child.text.decode()
                decl.cases[current] = None
            elif child.type == "line_string_literal" and current is not None:
                decl.cases[current] = _literal_text(child, file)
            elif child.type == "integer_literal" and current is not None:
                decl.cases[current] = int(child.text.decode())
            elif child.type in ("case", "=", ",", ";") or child.type in _COMMENTS:
                continue
            else:
                raise _unsupported(child, file, "enum case")

    # -- calling from Python ---------------------------------------------------------------------

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call function (or initialiser of type) ``name`` with Python arguments.

        Positional arguments fill the parameters in order, keyword arguments match Swift labels
        (or parameter names). Ints, floats (as float32), lists, dataclasses with the struct's
        fields (camelCase or snake_case), and strings for enum raw values are converted to the
        declared types. A Swift ``throw`` is raised as :class:`SwiftThrow`.
        """
        if name in self.types:
            decl = self.types[name]
            if decl.kind == "class":
                fn = decl.inits[0]
                values = self._python_args(fn, args, kwargs)
                with np.errstate(all="ignore"):
                    return self._construct(decl, values)
            if decl.kind == "struct":
                stored = self._memberwise(decl)
                fake = _Func("init", [_Param(s.name, s.name, s.type) for s in stored], name, False, None,
                             decl.file, decl.node, decl, True)
                values = self._python_args(fake, args, kwargs)
                return Record(name, {s.name: v for s, v in zip(stored, values)})
            raise SwiftSubsetError(f"cannot call enum {name}")
        candidates = self.functions.get(name)
        if not candidates:
            raise SwiftSubsetError(f"no function {name}")
        fn = self._pick(candidates, len(args), kwargs)
        values = self._python_args(fn, args, kwargs)
        with np.errstate(all="ignore"):  # Float overflow and 0/0 give inf/nan silently, as in Swift
            return self._invoke(fn, values, None)

    def call_method(self, instance: Instance, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call method ``name`` of a class instance with Python arguments."""
        decl = self.types[instance.type]
        fn = self._pick(decl.methods.get(name, []), len(args), kwargs)
        values = self._python_args(fn, args, kwargs)
        with np.errstate(all="ignore"):
            return self._invoke(fn, values, instance)

    def _pick(self, candidates: list[_Func], npos: int, kwargs: Mapping[str, Any]) -> _Func:
        fits = [f for f in candidates if len(f.params) == npos + len(kwargs)
                and all(any(k in (p.label, p.name) for p in f.params[npos:]) for k in kwargs)]
        if len(fits) != 1:
            names = ", ".join(f.signature for f in candidates) or "none"
            raise SwiftSubsetError(f"{len(fits)} overloads fit the arguments (declared: {names})")
        return fits[0]

    def _python_args(self, fn: _Func, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        values = list(args)
        for p in fn.params[len(args):]:
            key = p.label if p.label in kwargs else p.name
            if key not in kwargs:
                raise SwiftSubsetError(f"missing argument {p.label or p.name} of {fn.signature}")
            values.append(kwargs[key])
        return [self.from_python(v, p.type) for v, p in zip(values, fn.params)]

    def from_python(self, value: Any, t: SwiftType) -> Any:
        """A Python value as Swift type ``t`` (see :meth:`call`)."""
        if t == "Int":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise SwiftSubsetError(f"{value!r} is not an Int")
            return _check_int(int(value), "an argument")
        if t == "Float":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise SwiftSubsetError(f"{value!r} is not a Float")
            return np.float32(value)
        if t == "UInt8":
            if not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= 255:
                raise SwiftSubsetError(f"{value!r} is not a UInt8")
            return U8(int(value))
        if t in ("Bool", "String"):
            expected = bool if t == "Bool" else str
            if not isinstance(value, expected):
                raise SwiftSubsetError(f"{value!r} is not a {t}")
            return value
        if isinstance(t, tuple):
            if t[0] == "opt":
                return None if value is None else self.from_python(value, t[1])
            if t[0] == "array":
                if isinstance(value, (bytes, bytearray)):
                    value = list(value)
                elif isinstance(value, np.ndarray):
                    value = value.reshape(-1).tolist() if t[1] != "Float" else list(value.reshape(-1))
                return SwiftArray(t[1], (self.from_python(v, t[1]) for v in value))
            if t[0] == "tuple":
                items = [value[lab] for lab, _ in t[1]] if isinstance(value, Mapping) else list(value)
                return SwiftTuple((self.from_python(v, it) for v, (_, it) in zip(items, t[1])),
                                  [lab for lab, _ in t[1]])
        decl = self.types.get(t)
        if decl is None:
            raise SwiftSubsetError(f"unknown type {_show_type(t)}")
        if isinstance(value, (Record, Instance, EnumValue)):
            if value.type != t:
                raise SwiftSubsetError(f"{value.type} is not a {t}")
            return value
        if decl.kind == "enum":
            for case, raw in decl.cases.items():
                if value in (raw, case):
                    return EnumValue(t, case, raw)
            raise SwiftSubsetError(f"{value!r} is no case of {t}")
        if decl.kind == "struct":
            fields = {}
            for s in self._memberwise(decl):
                fields[s.name] = self.from_python(_attribute(value, s.name), s.type)
            return Record(t, fields)
        raise SwiftSubsetError(f"cannot make a {t} from Python")

    def _memberwise(self, decl: _TypeDecl) -> list[_Stored]:
        stored = [s for s in decl.stored if not (s.default is not None and not s.mutable)]
        for s in stored:
            if s.type is None:
                raise SwiftSubsetError(f"stored property {decl.name}.{s.name} needs a type annotation")
        return stored

    def fields(self, type_name: str) -> list[str]:
        """Stored property names of a struct or class, in declaration order (enum: case names)."""
        decl = self.types[type_name]
        return list(decl.cases) if decl.kind == "enum" else [s.name for s in decl.stored]

    def signatures(self) -> list[str]:
        """``name(label:label:)`` of every top-level function, for API checks."""
        return sorted(f.signature for fns in self.functions.values() for f in fns)

    def check_all(self) -> None:
        """Compile every function, method, initialiser and constant: raises on anything outside the subset."""
        for fns in self.functions.values():
            for fn in fns:
                self._compiled(fn)
        for decl in self.types.values():
            for fn in decl.inits + [m for ms in decl.methods.values() for m in ms]:
                self._compiled(fn)
            for name, (t, node) in decl.computed.items():
                self._computed(decl, name)
            for s in decl.stored:
                if s.default is not None:
                    _FunctionCompiler(self, None, decl.file, decl).constant(s.default, s.type)
        for g in self.globals.values():
            self._global(g)

    # -- running ---------------------------------------------------------------------------------

    def _compiled(self, fn: _Func) -> _Compiled:
        if fn.compiled is None:
            fn.compiled = _FunctionCompiler(self, fn, fn.file, fn.owner).function()
        return fn.compiled

    def _invoke(self, fn: _Func, args: list[Any], instance: Any) -> Any:
        compiled = fn.compiled or self._compiled(fn)
        frame = [_UNSET] * compiled.nslots
        for i, (coerce, value) in enumerate(zip(compiled.param_coerce, args)):
            frame[i] = coerce(value)
        if compiled.self_slot is not None:
            frame[compiled.self_slot] = instance
        signal = compiled.run(frame)
        if signal is _RETURN:
            return frame[compiled.ret_slot]
        if signal is not None:
            raise SwiftSubsetError(f"break/continue outside a loop in {fn.signature}")
        if fn.returns != "Void" and not fn.is_init:
            raise SwiftSubsetError(f"{fn.signature} ends without returning a {_show_type(fn.returns)}")
        return None

    def _construct(self, decl: _TypeDecl, args: list[Any]) -> Instance:
        instance = Instance(decl.name, self)
        for s in decl.stored:
            if s.default is not None:
                value = _FunctionCompiler(self, None, decl.file, decl).constant(s.default, s.type)
                instance.fields[s.name] = _copy(value)
        self._invoke(decl.inits[0], args, instance)
        missing = [s.name for s in decl.stored if s.name not in instance.fields]
        if missing:
            raise SwiftSubsetError(f"{decl.name}.init leaves {', '.join(missing)} uninitialised")
        return instance

    def _global(self, g: _Global) -> Any:
        if not g.evaluated:
            g.result = _FunctionCompiler(self, None, g.file, None).constant(g.value, g.type)
            g.evaluated = True
        return g.result

    def _computed(self, decl: _TypeDecl, name: str) -> _Func:
        t, node = decl.computed[name]
        fn = _Func(name, [], t or "Void", False, node, decl.file, node, decl)
        key = f"get:{name}"
        cached = decl.methods.get(key)
        if cached:
            return cached[0]
        if t is None:
            raise _unsupported(node, decl.file, "computed property without type")
        self._compiled(fn)
        decl.methods[key] = [fn]
        return fn

    def _property(self, value: Any, name: str, what: str) -> Any:
        if isinstance(value, (Record, Instance)):
            try:
                return value.fields[name]
            except KeyError:
                decl = self.types[value.type]
                if name in decl.computed:
                    return self._invoke(self._computed(decl, name), [], value)
                raise SwiftSubsetError(f"{value.type} has no property {name} ({what})") from None
        if isinstance(value, SwiftTuple):
            if name in value.labels:
                return value[value.labels.index(name)]
            if name.isdigit() and int(name) < len(value):
                return value[int(name)]
        elif isinstance(value, list):
            if name == "count":
                return len(value)
            if name == "isEmpty":
                return not value
            if name == "first":
                return value[0] if value else None
            if name == "last":
                return value[-1] if value else None
        elif isinstance(value, str):
            if name == "count":
                return len(value)
            if name == "isEmpty":
                return not value
        elif isinstance(value, np.float32):
            if name == "isNaN":
                return bool(np.isnan(value))
            if name == "isInfinite":
                return bool(np.isinf(value))
            if name == "isFinite":
                return bool(np.isfinite(value))
        elif isinstance(value, EnumValue) and name == "rawValue" and value.raw is not None:
            return value.raw
        raise SwiftSubsetError(f"property {name} of {_type_name(value)} is outside the subset ({what})")


def _attribute(value: Any, name: str) -> Any:
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name)
    if isinstance(value, Mapping):
        for key in (name, snake):
            if key in value:
                return value[key]
    else:
        for key in (name, snake):
            if hasattr(value, key):
                return getattr(value, key)
    raise SwiftSubsetError(f"{type(value).__name__} has no field {name} (or {snake})")


def _literal_text(node: Node, file: str) -> str:
    parts = _named(node)
    if any(p.type != "line_str_text" and p.type != "str_escaped_char" for p in parts):
        raise _unsupported(node, file, "interpolation in a constant string")
    return "".join(_unescape(p) for p in parts)


def _unescape(node: Node) -> str:
    text = node.text.decode()
    if node.type != "str_escaped_char":
        return text
    table = {"\\n": "\n", "\\t": "\t", "\\\\": "\\", '\\"': '"', "\\'": "'", "\\0": "\0", "\\r": "\r"}
    if text in table:
        return table[text]
    if text.startswith("\\u{"):
        return chr(int(text[3:-1], 16))
    return text


# ----------------------------------------------------------------------------------------- compiler


@dataclass
class _Slot:
    index: int
    mutable: bool
    type: SwiftType | None
    deferred: bool = False  # declared without a value: reads check that it was assigned


Eval = Callable[[list[Any]], Any]


class _FunctionCompiler:
    """Turns one function body into nested Python closures over a frame (a list of slots)."""

    def __init__(self, program: SwiftProgram, fn: _Func | None, file: str, owner: _TypeDecl | None) -> None:
        self.program = program
        self.fn = fn
        self.file = file
        self.owner = owner
        self.scopes: list[dict[str, _Slot]] = [{}]
        self.nslots = 0
        self.try_depth = 0
        self.ret_slot = -1
        self.self_slot: int | None = None
        self.in_init = fn is not None and fn.is_init

    # -- helpers -------------------------------------------------------------------------------

    def where(self, node: Node) -> str:
        name = self.fn.signature if self.fn is not None else "a constant"
        return f"{name} at {_where(node, self.file)}"

    def error(self, node: Node, what: str = "") -> SwiftSubsetError:
        return _unsupported(node, self.file, what)

    def declare(self, name: str, mutable: bool, t: SwiftType | None, node: Node) -> _Slot:
        if name in self.scopes[-1]:
            raise SwiftSubsetError(f"invalid redeclaration of {name} at {_where(node, self.file)}")
        slot = _Slot(self.nslots, mutable, t)
        self.nslots += 1
        if name != "_":
            self.scopes[-1][name] = slot
        return slot

    def lookup(self, name: str) -> _Slot | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def has_self(self) -> bool:
        return self.self_slot is not None

    # -- entry points ----------------------------------------------------------------------------

    def function(self) -> _Compiled:
        fn = self.fn
        assert fn is not None
        coercers = []
        for p in fn.params:
            self.declare(p.name, False, p.type, fn.node)
            coercers.append(self._coercer(p.type, f"argument {p.name} of {fn.signature}"))
        self.ret_slot = self.declare("return value", False, None, fn.node).index
        if fn.owner is not None:
            self.self_slot = self.declare("self", False, fn.owner.name, fn.node).index
        self.scopes.append({})
        body = fn.body
        statements = [c for c in _named(body) if c.type == "statements"]
        if len(_named(body)) != len(statements):
            # a computed property or function body is `{ statements }`
            others = [c for c in _named(body) if c.type != "statements"]
            raise self.error(others[0])
        run = self.block(statements[0]) if statements else (lambda frame: None)
        return _Compiled(run, self.nslots, coercers, self.ret_slot, self.self_slot)

    def constant(self, node: Node, t: SwiftType | None) -> Any:
        """Evaluate a constant expression (a top-level ``let`` or a property default)."""
        evaluate = self.expr(node, t)
        frame = [_UNSET] * max(self.nslots, 1)
        value = evaluate(frame)
        return _coerce(value, t, self.where(node)) if t is not None else _settle(value, self.where(node))

    def _coercer(self, t: SwiftType, what: str) -> Callable[[Any], Any]:
        if t == "Int":
            def coerce_int(v: Any) -> Any:
                return v if type(v) is int else _coerce(v, t, what)
            return coerce_int
        if t == "Float":
            def coerce_float(v: Any) -> Any:
                return v if type(v) is np.float32 else _coerce(v, t, what)
            return coerce_float
        if isinstance(t, tuple) and t[0] == "array":
            elem = t[1]

            def coerce_array(v: Any) -> Any:  # parameters are immutable: no copy needed
                return v if isinstance(v, SwiftArray) and v.elem == elem else _coerce(v, t, what)
            return coerce_array
        if isinstance(t, str) and t not in ("Bool", "String", "UInt8", "Void"):
            def coerce_named(v: Any) -> Any:
                return v if type(v) in (Record, EnumValue, Instance) and v.type == t else _coerce(v, t, what)
            return coerce_named
        return lambda v: _coerce(v, t, what)

    # -- statements ------------------------------------------------------------------------------

    def block(self, node: Node | None, new_scope: bool = True) -> Eval:
        if new_scope:
            self.scopes.append({})
        try:
            statements = [self.statement(s) for s in _named(node)] if node is not None else []
        finally:
            if new_scope:
                self.scopes.pop()
        if not statements:
            return lambda frame: None
        if len(statements) == 1:
            return statements[0]

        def run(frame: list[Any]) -> Any:
            for s in statements:
                signal = s(frame)
                if signal is not None:
                    return signal
            return None
        return run

    def statement(self, node: Node) -> Eval:
        kind = node.type
        if kind == "property_declaration":
            return self.declaration(node)
        if kind == "assignment":
            return self.assignment(node)
        if kind == "if_statement":
            return self.if_statement(node)
        if kind == "guard_statement":
            return self.guard_statement(node)
        if kind == "while_statement":
            return self.while_statement(node)
        if kind == "for_statement":
            return self.for_statement(node)
        if kind == "control_transfer_statement":
            return self.control_transfer(node)
        if kind in ("call_expression", "try_expression"):
            evaluate = self.expr(node)

            def run(frame: list[Any]) -> None:
                evaluate(frame)
            return run
        raise self.error(node, "statement")

    def declaration(self, node: Node) -> Eval:
        names, mutable, annotation, value = self.program._binding(node, self.file)
        what = self.where(node)
        evaluate = self.expr(value, annotation) if value is not None else None
        if isinstance(names, tuple):
            if evaluate is None or any(isinstance(n, tuple) for n in names):
                raise self.error(node, "tuple pattern")
            slots = [self.declare(n, mutable, None, node).index for n in names]

            def run_tuple(frame: list[Any]) -> None:
                result = evaluate(frame)
                if not isinstance(result, SwiftTuple) or len(result) != len(slots):
                    raise SwiftSubsetError(f"{_type_name(result)} destructured into {len(slots)} names in {what}")
                for i, v in zip(slots, result):
                    frame[i] = _settle(v, what)
            return run_tuple
        slot = self.declare(names, mutable, annotation, node)
        index = slot.index
        if evaluate is None:
            if annotation is None:
                raise self.error(node, "declaration without type or value")
            slot.deferred = True
            return lambda frame: None  # stays _UNSET until assigned (Swift checks this at compile time)
        if annotation is not None:
            coerce = self._coercer(annotation, what)
            copying = isinstance(annotation, tuple) and annotation[0] == "array"

            def run_typed(frame: list[Any]) -> None:
                v = coerce(evaluate(frame))
                frame[index] = _copy(v) if copying else v
            return run_typed

        def run(frame: list[Any]) -> None:
            frame[index] = _settle(evaluate(frame), what)
        return run

    def assignment(self, node: Node) -> Eval:
        target = node.child_by_field_name("target")
        op = node.child_by_field_name("operator").text.decode()
        result = node.child_by_field_name("result")
        what = self.where(node)
        if op not in ("=", "+=", "-=", "*=", "/=", "%="):
            raise self.error(node, f"operator {op}")
        inner = _named(target)
        if len(inner) != 1:
            raise self.error(target)
        target = inner[0]
        evaluate = self.expr(result)
        binary = op[0] if op != "=" else None

        def combine(old: Any, new: Any) -> Any:
            return new if binary is None else _arith(binary, old, new, what)

        # subscript: base[index] op= value
        if target.type == "call_expression" and self._is_subscript(_named(target)[-1]):
            base_node, index_node = self._subscript_parts(target)
            base = self.storage(base_node)
            index_eval = self.expr(index_node)

            def run_subscript(frame: list[Any]) -> None:
                array = base(frame)
                i = index_eval(frame)
                if type(i) is not int:
                    i = _coerce(i, "Int", what)
                if i < 0 or i >= len(array):
                    raise SwiftTrap(f"index {i} out of range (count {len(array)}) in {what}")
                new = evaluate(frame)
                value = combine(array[i], new) if binary is not None else new
                vt = type(value)
                elem = array.elem
                if not (elem == "Float" and vt is np.float32 or elem == "Int" and vt is int):
                    value = _copy(_coerce(value, elem, what))
                array[i] = value
            return run_subscript

        getter, setter = self.variable(target)

        def run(frame: list[Any]) -> None:
            new = evaluate(frame)
            old = getter(frame)
            if binary is not None and old is _UNSET:
                raise SwiftSubsetError(f"variable used before being initialised in {what}")
            setter(frame, _store_like(combine(old, new), old, what))
        return run

    def variable(self, node: Node) -> tuple[Eval, Callable[[list[Any], Any], None]]:
        """Getter and setter of an assignable name: a ``var``, or a property of ``self``."""
        what = self.where(node)
        name = None
        via_self = False
        if node.type == "simple_identifier":
            name = node.text.decode()
        elif node.type == "navigation_expression":
            target = node.child_by_field_name("target")
            suffix = node.child_by_field_name("suffix").child_by_field_name("suffix")
            if target.type == "self_expression" and suffix.type == "simple_identifier":
                name, via_self = suffix.text.decode(), True
        if name is None:
            raise self.error(node, "assignment target")
        slot = None if via_self else self.lookup(name)
        if slot is not None:
            index = slot.index
            if not slot.mutable:
                # `let x: T` without a value may be assigned once
                def set_once(frame: list[Any], value: Any) -> None:
                    if frame[index] is not _UNSET:
                        raise SwiftSubsetError(f"cannot assign to let constant {name} in {what}")
                    frame[index] = value
                return (lambda frame: frame[index]), set_once
            return (lambda frame: frame[index]), _frame_setter(index)
        owner = self.owner
        stored = next((s for s in owner.stored if s.name == name), None) if owner is not None else None
        if stored is not None and self.has_self():
            if owner.kind != "class":
                raise self.error(node, "assignment to a struct property (no mutating members)")
            if not stored.mutable and not self.in_init:
                raise SwiftSubsetError(f"cannot assign to let property {name} in {what}")
            self_index = self.self_slot
            declared = stored.type

            def get(frame: list[Any]) -> Any:
                return frame[self_index].fields.get(name, _UNSET)

            def set_(frame: list[Any], value: Any) -> None:
                if declared is not None:
                    value = _copy(_coerce(value, declared, what))
                frame[self_index].fields[name] = value
            return get, set_
        raise SwiftSubsetError(f"cannot assign to {name} in {what} (not a var)")

    def storage(self, node: Node) -> Eval:
        """The array object a subscript assignment writes into (by reference), checking that it is a var."""
        what = self.where(node)
        if node.type == "call_expression" and self._is_subscript(_named(node)[-1]):
            base_node, index_node = self._subscript_parts(node)
            base = self.storage(base_node)
            index_eval = self.expr(index_node)

            def nested(frame: list[Any]) -> Any:
                array = base(frame)
                i = _coerce(index_eval(frame), "Int", what)
                if i < 0 or i >= len(array):
                    raise SwiftTrap(f"index {i} out of range (count {len(array)}) in {what}")
                return array[i]
            return nested
        getter, _ = self.variable(node)
        if node.type == "simple_identifier":
            slot = self.lookup(node.text.decode())
            if slot is not None and not slot.mutable:
                raise SwiftSubsetError(f"cannot mutate let constant {node.text.decode()} in {what}")
        name = node.text.decode().removeprefix("self.")
        if self.lookup(name) is None and self.owner is not None:
            stored = next((s for s in self.owner.stored if s.name == name), None)
            if stored is not None and not stored.mutable and not self.in_init:
                raise SwiftSubsetError(f"cannot mutate let property {name} in {what}")

        def get(frame: list[Any]) -> Any:
            array = getter(frame)
            if not isinstance(array, list):
                raise SwiftSubsetError(f"subscript assignment into {_type_name(array)} in {what}")
            return array
        return get

    def conditions(self, node: Node, stop: set[str]) -> tuple[list[Any], int]:
        """Conditions of an if/guard (bool expressions and `let x = optional` bindings), up to a stop token."""
        items: list[Any] = []
        children = _kids(node)
        i = 1
        while i < len(children) and children[i].type not in stop:
            child = children[i]
            if child.type == "," or child.type in _COMMENTS:
                i += 1
                continue
            if child.type == "value_binding_pattern":
                mutable = child.text.decode() == "var"
                name_node = children[i + 1]
                if name_node.type != "simple_identifier":
                    raise self.error(name_node, "binding pattern")
                if i + 2 < len(children) and children[i + 2].type == "=":
                    value_node = children[i + 3]
                    i += 4
                else:
                    value_node = name_node
                    i += 2
                evaluate = self.expr(value_node)
                slot = self.declare(name_node.text.decode(), mutable, None, name_node)
                items.append(("let", slot.index, evaluate))
                continue
            if child.type in ("let", "var", "case") or child.type == "pattern":
                raise self.error(child, "condition")
            items.append(("bool", self.bool_expr(child)))
            i += 1
        return items, i

    def bool_expr(self, node: Node) -> Eval:
        evaluate = self.expr(node)
        what = self.where(node)

        def run(frame: list[Any]) -> bool:
            v = evaluate(frame)
            if type(v) is not bool:
                raise SwiftSubsetError(f"condition is {_type_name(v)}, not Bool, in {what}")
            return v
        return run

    @staticmethod
    def _test(items: list[Any]) -> Callable[[list[Any]], bool]:
        if len(items) == 1 and items[0][0] == "bool":
            return items[0][1]

        def test(frame: list[Any]) -> bool:
            for item in items:
                if item[0] == "bool":
                    if not item[1](frame):
                        return False
                else:
                    v = item[2](frame)
                    if v is None:
                        return False
                    frame[item[1]] = _copy(v)
            return True
        return test

    def if_statement(self, node: Node) -> Eval:
        self.scopes.append({})
        items, i = self.conditions(node, {"{"})
        children = _kids(node)
        test = self._test(items)
        j = i + 1
        body_node = None
        if children[j].type == "statements":
            body_node = children[j]
            j += 1
        if children[j].type != "}":
            raise self.error(children[j])
        then = self.block(body_node)
        self.scopes.pop()
        j += 1
        otherwise: Eval | None = None
        if j < len(children) and children[j].type == "else":
            rest = children[j + 1]
            if rest.type == "if_statement":
                otherwise = self.if_statement(rest)
            elif rest.type == "{":
                inner = children[j + 2] if children[j + 2].type == "statements" else None
                otherwise = self.block(inner)
            else:
                raise self.error(rest)

        def run(frame: list[Any]) -> Any:
            if test(frame):
                return then(frame)
            if otherwise is not None:
                return otherwise(frame)
            return None
        return run

    def guard_statement(self, node: Node) -> Eval:
        items, i = self.conditions(node, {"else"})  # bindings stay visible after the guard
        children = _kids(node)
        body_node = next((c for c in children[i:] if c.type == "statements"), None)
        otherwise = self.block(body_node)
        test = self._test(items)
        what = self.where(node)

        def run(frame: list[Any]) -> Any:
            if test(frame):
                return None
            signal = otherwise(frame)
            if signal is None:
                raise SwiftSubsetError(f"guard body falls through in {what}")
            return signal
        return run

    def while_statement(self, node: Node) -> Eval:
        items, i = self.conditions(node, {"{"})
        if any(item[0] != "bool" for item in items):
            raise self.error(node, "while let")
        test = self._test(items)
        body_node = next((c for c in _kids(node)[i:] if c.type == "statements"), None)
        body = self.block(body_node)
        limit = self.program.max_loop
        what = self.where(node)

        def run(frame: list[Any]) -> Any:
            left = limit
            while test(frame):
                left -= 1
                if left < 0:
                    raise SwiftTrap(f"while loop ran {limit} times in {what}: endless?")
                signal = body(frame)
                if signal is _BREAK:
                    break
                if signal is not None and signal is not _CONTINUE:
                    return signal  # a return value: leaves the loop and the function
            return None
        return run

    def for_statement(self, node: Node) -> Eval:
        item = node.child_by_field_name("item")
        collection = self.expr(node.child_by_field_name("collection"))
        what = self.where(node)
        for child in _kids(node):
            if child.type in ("where_clause", "type_annotation") or child.type == "try":
                raise self.error(child, "in a for loop")
        self.scopes.append({})
        name = self.program._pattern(item, self.file)
        if not isinstance(name, str):
            raise self.error(item, "for pattern")
        slot = self.declare(name, False, None, item).index
        body_node = next((c for c in _kids(node) if c.type == "statements"), None)
        body = self.block(body_node)
        self.scopes.pop()

        def run(frame: list[Any]) -> Any:
            values = collection(frame)
            if isinstance(values, list):
                values = tuple(values)  # Swift iterates over a copy
            elif not isinstance(values, range):
                raise SwiftSubsetError(f"for-in over {_type_name(values)} in {what}")
            for v in values:
                frame[slot] = v
                signal = body(frame)
                if signal is _BREAK:
                    break
                if signal is not None and signal is not _CONTINUE:
                    return signal
            return None
        return run

    def control_transfer(self, node: Node) -> Eval:
        first = node.children[0]
        rest = _named(node)
        what = self.where(node)
        if first.type == "return":
            if self.fn is None:
                raise self.error(node)
            result = node.child_by_field_name("result")
            returns = self.fn.returns
            ret = self.ret_slot
            if result is None:
                if returns != "Void":
                    raise SwiftSubsetError(f"return without a value in {what}")
                return lambda frame: _RETURN
            if returns == "Void":
                raise SwiftSubsetError(f"return with a value in Void {what}")
            evaluate = self.expr(result, returns)
            coerce = self._coercer(returns, what)

            def run_return(frame: list[Any]) -> Any:
                frame[ret] = _copy(coerce(evaluate(frame)))
                return _RETURN
            return run_return
        if first.type == "break" and not rest:
            return lambda frame: _BREAK
        if first.type == "continue" and not rest:
            return lambda frame: _CONTINUE
        if first.type == "throw_keyword":
            if self.fn is None or not self.fn.throws:
                raise SwiftSubsetError(f"throw in a function that does not throw: {what}")
            evaluate = self.expr(rest[-1])

            def run_throw(frame: list[Any]) -> Any:
                value = evaluate(frame)
                if not isinstance(value, Record):
                    raise SwiftSubsetError(f"throw of {_type_name(value)} in {what}")
                raise SwiftThrow(value)
            return run_throw
        raise self.error(node)

    # -- expressions -----------------------------------------------------------------------------

    def expr(self, node: Node, expected: SwiftType | None = None) -> Eval:
        """Compile an expression; ``expected`` is its contextual type where known (for literals)."""
        if node.type in _CHAINABLE:
            items: list[Any] = []
            _flatten(node, items, self.file)
            if len(items) == 1:
                return self.operand(items[0], expected)
            return self.chain(items, expected)
        return self.atom(node, expected)

    def atom(self, node: Node, expected: SwiftType | None) -> Eval:
        kind = node.type
        if kind == "integer_literal":
            text = node.text.decode().replace("_", "")
            value = IntLiteral(int(text, 0) if text[:2].lower() in ("0x", "0o", "0b") else int(text, 10))
            return _literal(value)
        if kind == "real_literal":
            real = RealLiteral(float(node.text.decode().replace("_", "")))
            return _literal(real)
        if kind == "boolean_literal":
            flag = node.text.decode() == "true"
            return lambda frame: flag
        if kind == "nil_literal":
            return lambda frame: None
        if kind == "line_string_literal":
            return self.string(node)
        if kind == "simple_identifier":
            return self.identifier(node)
        if kind == "self_expression":
            if not self.has_self():
                raise self.error(node, "self outside a method")
            index = self.self_slot
            return lambda frame: frame[index]
        if kind == "navigation_expression":
            return self.navigation(node.child_by_field_name("target"), node.child_by_field_name("suffix"), node)
        if kind == "call_expression":
            parts = _named(node)
            if len(parts) != 2 or parts[1].type != "call_suffix":
                raise self.error(node, "call")
            return self.call(parts[0], parts[1], node)
        if kind == "prefix_expression":
            return self.prefix(node, expected)
        if kind == "tuple_expression":
            return self.tuple(node, expected)
        if kind == "array_literal":
            return self.array(node, expected)
        if kind == "try_expression":
            inner = [c for c in _named(node) if c.type != "try_operator"]
            if len(inner) != 1 or node.children[0].text.decode() != "try":
                raise self.error(node, "try? / try!")
            self.try_depth += 1
            try:
                return self.expr(inner[0], expected)
            finally:
                self.try_depth -= 1
        raise self.error(node, "expression")

    def operand(self, item: _Operand, expected: SwiftType | None) -> Eval:
        if item.suffixes:
            evaluate = self.postfix(item.node, item.suffixes)
        else:
            evaluate = self.atom(item.node, expected if not item.prefixes else None)
        for op, node in item.prefixes:
            evaluate = self.apply_prefix(op, evaluate, node)
        return evaluate

    def apply_prefix(self, op: str, evaluate: Eval, node: Node) -> Eval:
        what = self.where(node)
        if op == "-":
            def negate(frame: list[Any]) -> Any:
                v = evaluate(frame)
                vt = type(v)
                if vt is int:
                    return _check_int(-v, what)
                if vt is np.float32:
                    return np.negative(v)
                if vt is IntLiteral:
                    return IntLiteral(-v)
                if vt is RealLiteral:
                    return RealLiteral(-v)
                raise SwiftSubsetError(f"unary - on {_type_name(v)} in {what}")
            return negate
        if op == "!":
            def invert(frame: list[Any]) -> bool:
                v = evaluate(frame)
                if type(v) is not bool:
                    raise SwiftSubsetError(f"! on {_type_name(v)} in {what}")
                return not v
            return invert
        raise self.error(node, f"prefix operator {op}")

    def chain(self, items: list[Any], expected: SwiftType | None) -> Eval:
        """Re-associate an operator chain by Swift's precedence and compile it."""
        position = 0

        def parse(min_prec: int) -> Eval:
            nonlocal position
            lhs = self.operand(items[position], None)
            position += 1
            while position < len(items):
                op = items[position]
                if op.text not in _PRECEDENCE:
                    raise self.error(op.node, f"operator {op.text}")
                prec, assoc = _PRECEDENCE[op.text]
                if prec < min_prec:
                    break
                position += 1
                rhs = parse(prec + 1 if assoc != "right" else prec)
                lhs = self.binary(op, lhs, rhs)
                if assoc == "none" and position < len(items) and _PRECEDENCE.get(items[position].text, (0,))[0] == prec:
                    raise SwiftSubsetError(f"`{op.text}` is non-associative in Swift: {self.where(op.node)}")
            return lhs

        return parse(0)

    def binary(self, op: _Operator, lhs: Eval, rhs: Eval) -> Eval:
        text = op.text
        what = self.where(op.node)
        if text in ("+", "-", "*", "/", "%") and (_constant(lhs) is not None) != (_constant(rhs) is not None):
            return self.arith_with_literal(text, lhs, rhs, what)
        if text in ("+", "-", "*", "/", "%"):
            def arith(frame: list[Any]) -> Any:
                a = lhs(frame)
                b = rhs(frame)
                if type(a) is int and type(b) is int:  # the common case, inline
                    if text == "+":
                        r = a + b
                    elif text == "-":
                        r = a - b
                    elif text == "*":
                        r = a * b
                    else:
                        return _arith(text, a, b, what)
                    if r < INT_MIN or r > INT_MAX:
                        raise SwiftTrap(f"arithmetic overflow in {what}")
                    return r
                if type(a) is np.float32 and type(b) is np.float32 and text != "%":
                    if text == "+":
                        return np.float32(a + b)
                    if text == "-":
                        return np.float32(a - b)
                    if text == "*":
                        return np.float32(a * b)
                    return np.float32(a / b)
                return _arith(text, a, b, what)
            return arith
        if text in ("<", "<=", ">", ">=", "==", "!="):
            fast = {"<": int.__lt__, "<=": int.__le__, ">": int.__gt__, ">=": int.__ge__,
                    "==": int.__eq__, "!=": int.__ne__}[text]

            def compare(frame: list[Any]) -> bool:
                a = lhs(frame)
                b = rhs(frame)
                if type(a) is int and type(b) is int:
                    return fast(a, b)
                return _compare(text, a, b, what)
            return compare
        if text in ("&&", "||"):
            is_and = text == "&&"

            def logic(frame: list[Any]) -> bool:
                a = lhs(frame)
                if type(a) is not bool:
                    raise SwiftSubsetError(f"{text} on {_type_name(a)} in {what}")
                if a is not is_and:
                    return a
                b = rhs(frame)
                if type(b) is not bool:
                    raise SwiftSubsetError(f"{text} on {_type_name(b)} in {what}")
                return b
            return logic
        if text == "?:":
            middle = self.expr(op.middle)

            def ternary(frame: list[Any]) -> Any:
                c = lhs(frame)
                if type(c) is not bool:
                    raise SwiftSubsetError(f"?: condition is {_type_name(c)} in {what}")
                return middle(frame) if c else rhs(frame)
            return ternary
        if text == "??":
            def coalesce(frame: list[Any]) -> Any:
                a = lhs(frame)
                return rhs(frame) if a is None else a
            return coalesce
        if text in ("..<", "..."):
            closed = text == "..."

            def make_range(frame: list[Any]) -> range:
                a = _coerce(lhs(frame), "Int", what)
                b = _coerce(rhs(frame), "Int", what)
                if a > b:
                    raise SwiftTrap(f"Range requires lowerBound <= upperBound ({a} {text} {b}) in {what}")
                return range(a, b + 1 if closed else b)
            return make_range
        raise self.error(op.node, f"operator {text}")

    @staticmethod
    def arith_with_literal(text: str, lhs: Eval, rhs: Eval, what: str) -> Eval:
        """``x op literal`` or ``literal op x``: the literal is converted once, for an Int or a Float ``x``."""
        literal_left = _constant(lhs) is not None
        literal = _constant(lhs) if literal_left else _constant(rhs)
        other = rhs if literal_left else lhs
        as_int = int(literal) if type(literal) is IntLiteral else None
        as_float = _coerce(literal, "Float", what)

        def run(frame: list[Any]) -> Any:
            x = other(frame)
            tx = type(x)
            if tx is int and as_int is not None:
                a, b = (as_int, x) if literal_left else (x, as_int)
                if text == "+":
                    r = a + b
                elif text == "-":
                    r = a - b
                elif text == "*":
                    r = a * b
                else:
                    return _arith(text, a, b, what)
                if r < INT_MIN or r > INT_MAX:
                    raise SwiftTrap(f"arithmetic overflow in {what}")
                return r
            if tx is np.float32:
                a, b = (as_float, x) if literal_left else (x, as_float)
                if text == "+":
                    return np.float32(a + b)
                if text == "-":
                    return np.float32(a - b)
                if text == "*":
                    return np.float32(a * b)
                if text == "/":
                    return np.float32(a / b)
            return _arith(text, literal, x, what) if literal_left else _arith(text, x, literal, what)
        return run

    def string(self, node: Node) -> Eval:
        parts: list[Any] = []
        for child in _named(node):
            if child.type in ("line_str_text", "str_escaped_char"):
                parts.append(_unescape(child))
            elif child.type == "interpolated_expression":
                value = child.child_by_field_name("value")
                if value is None or len(_named(child)) != 1:
                    raise self.error(child, "interpolation")
                parts.append(self.expr(value))
            else:
                raise self.error(child, "string literal")
        if all(isinstance(p, str) for p in parts):
            text = "".join(parts)
            return lambda frame: text
        program = self.program

        def run(frame: list[Any]) -> str:
            return "".join(p if isinstance(p, str) else describe(_settle_for_text(p(frame)), program) for p in parts)
        return run

    def identifier(self, node: Node) -> Eval:
        name = node.text.decode()
        what = self.where(node)
        slot = self.lookup(name)
        if slot is not None:
            index = slot.index
            if not slot.deferred:
                return lambda frame: frame[index]

            def local(frame: list[Any]) -> Any:
                v = frame[index]
                if v is _UNSET:
                    raise SwiftSubsetError(f"{name} used before being initialised in {what}")
                return v
            return local
        owner = self.owner
        if owner is not None and self.has_self():
            self_index = self.self_slot
            if any(s.name == name for s in owner.stored):
                def member(frame: list[Any]) -> Any:
                    try:
                        return frame[self_index].fields[name]
                    except KeyError:
                        raise SwiftSubsetError(f"self.{name} used before being initialised in {what}") from None
                return member
            if name in owner.computed:
                program = self.program

                def computed(frame: list[Any]) -> Any:
                    return program._property(frame[self_index], name, what)
                return computed
        g = self.program.globals.get(name)
        if g is not None:
            program = self.program
            return lambda frame: program._global(g)
        raise SwiftSubsetError(f"unknown name {name} in {what}")

    def navigation(self, target: Node, suffix_node: Node, node: Node) -> Eval:
        suffix = suffix_node.child_by_field_name("suffix")
        what = self.where(node)
        if suffix is None or suffix.type not in ("simple_identifier", "integer_literal"):
            raise self.error(node, "member access")
        name = suffix.text.decode()
        if target.type == "simple_identifier" and self.lookup(target.text.decode()) is None:
            type_name = target.text.decode()
            decl = self.program.types.get(type_name)
            if decl is not None and decl.kind == "enum":
                if name not in decl.cases:
                    raise SwiftSubsetError(f"{type_name} has no case {name} ({what})")
                value = EnumValue(type_name, name, decl.cases[name])
                return lambda frame: value
            if type_name == "Int" and name in ("max", "min"):
                bound = INT_MAX if name == "max" else INT_MIN
                return lambda frame: bound
            if decl is not None or type_name in ("Int", "Float", "UInt8", "String", "Bool"):
                raise self.error(node, "static member")
        base = self.expr(target)
        program = self.program

        def get(frame: list[Any]) -> Any:
            value = base(frame)
            if type(value) is Record or type(value) is Instance:
                fields = value.fields
                if name in fields:
                    return fields[name]
            return program._property(value, name, what)
        return get

    def prefix(self, node: Node, expected: SwiftType | None) -> Eval:
        op = _prefix_op(node)
        target = node.child_by_field_name("target")
        if op == ".":
            if target.type != "simple_identifier":
                raise self.error(node, "implicit member")
            return self.implicit_member(target.text.decode(), node, expected)
        if op in ("-", "!"):
            return self.apply_prefix(op, self.expr(target), node)
        raise self.error(node, f"prefix operator {op}")

    def implicit_member(self, name: str, node: Node, expected: SwiftType | None) -> Eval:
        what = self.where(node)
        if isinstance(expected, tuple) and expected[0] == "opt":
            expected = expected[1]
        if isinstance(expected, str) and expected in self.program.types:
            decl = self.program.types[expected]
            if decl.kind == "enum" and name in decl.cases:
                value = EnumValue(expected, name, decl.cases[name])
                return lambda frame: value
        found = [(d.name, d.cases[name]) for d in self.program.types.values() if d.kind == "enum" and name in d.cases]
        if len(found) != 1:
            raise SwiftSubsetError(f"implicit member .{name} is {'ambiguous' if found else 'unknown'} in {what}")
        value = EnumValue(found[0][0], name, found[0][1])
        return lambda frame: value

    def tuple(self, node: Node, expected: SwiftType | None) -> Eval:
        labels: list[str | None] = []
        values: list[Node] = []
        pending: str | None = None
        for i, child in enumerate(node.children):
            field_name = node.field_name_for_child(i)
            if field_name == "name":
                pending = child.text.decode()
            elif field_name == "value":
                labels.append(pending)
                values.append(child)
                pending = None
            elif child.type in ("(", ")", ",", ":") or child.type in _COMMENTS:
                continue
            else:
                raise self.error(child, "in a tuple")
        if len(values) == 1 and labels[0] is None:
            return self.expr(values[0], expected)  # parentheses
        types: list[SwiftType | None] = [None] * len(values)
        if isinstance(expected, tuple) and expected[0] == "tuple" and len(expected[1]) == len(values):
            types = [t for _, t in expected[1]]
        parts = [self.expr(v, t) for v, t in zip(values, types)]

        def run(frame: list[Any]) -> SwiftTuple:
            return SwiftTuple((p(frame) for p in parts), labels)
        return run

    def array(self, node: Node, expected: SwiftType | None) -> Eval:
        elements = [c for c in _named(node)]
        what = self.where(node)
        elem = expected[1] if isinstance(expected, tuple) and expected[0] == "array" else None
        parts = [self.expr(e, elem) for e in elements]
        if elem is not None:
            def typed(frame: list[Any]) -> SwiftArray:
                return SwiftArray(elem, (_copy(_coerce(p(frame), elem, what)) for p in parts))
            return typed
        if not parts:
            # `[]` whose type the context gives later (an argument, a stored property, a tuple item)
            return lambda frame: SwiftArray(None)

        def inferred(frame: list[Any]) -> SwiftArray:
            return _infer_array([_copy(p(frame)) for p in parts], what)
        return inferred

    # -- calls -----------------------------------------------------------------------------------

    @staticmethod
    def _is_subscript(suffix: Node) -> bool:
        return suffix.type == "call_suffix" and suffix.children[0].type == "value_arguments" and \
            suffix.children[0].children[0].type == "["

    def _subscript_index(self, suffix: Node, node: Node) -> Node:
        args = self.arguments(suffix)
        if len(args) != 1 or args[0][0] is not None:
            raise self.error(node, "subscript")
        return args[0][1]

    def _subscript_parts(self, node: Node) -> tuple[Node, Node]:
        base, suffix = _named(node)
        return base, self._subscript_index(suffix, node)

    def arguments(self, suffix: Node) -> list[tuple[str | None, Node]]:
        parts = _named(suffix)
        if len(parts) != 1 or parts[0].type != "value_arguments":
            closure = next((p for p in parts if p.type != "value_arguments"), suffix)
            raise self.error(closure, "closures")
        args = []
        for arg in _named(parts[0]):
            if arg.type != "value_argument":
                raise self.error(arg, "argument")
            label = arg.child_by_field_name("name")
            value = arg.child_by_field_name("value")
            if value is None:
                raise self.error(arg, "argument")
            args.append((label.text.decode() if label is not None else None, value))
        return args

    def postfix(self, base: Node, suffixes: tuple[Node, ...]) -> Eval:
        """An operand whose call/member suffixes tree-sitter attached to the chain before it."""
        first = suffixes[0]
        if first.type == "call_suffix":
            evaluate, used = self.call(base, first, first), 1
        elif len(suffixes) > 1 and suffixes[1].type == "call_suffix":
            evaluate, used = self.method_call(base, first, self.arguments(suffixes[1]), suffixes[1]), 2
        else:
            evaluate, used = self.navigation(base, first, first), 1
        program = self.program
        for suffix in suffixes[used:]:
            name_node = suffix.child_by_field_name("suffix") if suffix.type == "navigation_suffix" else None
            if name_node is None:
                raise self.error(suffix, "suffix after a call")
            name, what, inner = name_node.text.decode(), self.where(suffix), evaluate

            def member(frame: list[Any], inner: Eval = inner, name: str = name, what: str = what) -> Any:
                return program._property(inner(frame), name, what)
            evaluate = member
        return evaluate

    def call(self, callee: Node, suffix: Node, node: Node) -> Eval:
        what = self.where(node)
        if self._is_subscript(suffix):
            index_node = self._subscript_index(suffix, node)
            base = self.expr(callee)
            index_eval = self.expr(index_node)

            def subscript(frame: list[Any]) -> Any:
                array = base(frame)
                i = index_eval(frame)
                if type(i) is not int:
                    i = _coerce(i, "Int", what)
                if not isinstance(array, list):
                    raise SwiftSubsetError(f"subscript of {_type_name(array)} in {what}")
                if i < 0 or i >= len(array):
                    raise SwiftTrap(f"index {i} out of range (count {len(array)}) in {what}")
                return array[i]
            return subscript
        args = self.arguments(suffix)
        labels = tuple(label for label, _ in args)
        if callee.type == "bang" and len(args) == 1 and labels == (None,):
            # tree-sitter-swift reads `!(x)` as a call of `!`
            return self.apply_prefix("!", self.expr(args[0][1]), node)
        if callee.type == "array_literal":
            return self.array_init(callee, args, what)
        if callee.type == "navigation_expression":
            return self.method_call(callee.child_by_field_name("target"), callee.child_by_field_name("suffix"),
                                    args, node)
        if callee.type != "simple_identifier":
            raise self.error(callee, "callee")
        name = callee.text.decode()
        if self.lookup(name) is not None:
            raise self.error(callee, "calling a value (closures are outside the subset)")
        if name in ("Float", "Int", "UInt8"):
            if labels != (None,):
                raise self.error(node, f"{name} initialiser with labels")
            inner = self.expr(args[0][1])
            return lambda frame: _convert(name, inner(frame), what)
        if name in ("min", "max"):
            if len(args) < 2 or any(label is not None for label in labels):
                raise self.error(node, name)
            values = [self.expr(v) for _, v in args]
            pick = _swift_min if name == "min" else _swift_max
            return lambda frame: pick([v(frame) for v in values], what)
        if name == "precondition":
            if not 1 <= len(args) <= 2 or any(label is not None for label in labels):
                raise self.error(node, "precondition")
            test = self.bool_expr(args[0][1])
            message = self.expr(args[1][1]) if len(args) == 2 else (lambda frame: "")

            def check(frame: list[Any]) -> None:
                if not test(frame):
                    raise SwiftTrap(f"precondition failed: {message(frame)} ({what})")
            return check
        decl = self.program.types.get(name)
        if decl is not None:
            return self.initialiser(decl, args, node)
        # methods of self (implicit self), then top-level functions
        if self.owner is not None and self.has_self() and name in self.owner.methods:
            fn = self.resolve(self.owner.methods[name], labels, node)
            return self.invoke(fn, args, node, self.self_slot)
        candidates = self.program.functions.get(name)
        if not candidates:
            raise SwiftSubsetError(f"unknown function {name} in {what}")
        return self.invoke(self.resolve(candidates, labels, node), args, node, None)

    def resolve(self, candidates: list[_Func], labels: tuple[str | None, ...], node: Node) -> _Func:
        fits = [f for f in candidates if f.labels == labels]
        if len(fits) != 1:
            shown = "(" + "".join((lab or "_") + ":" for lab in labels) + ")"
            raise SwiftSubsetError(f"no {candidates[0].name}{shown} (declared: "
                                   f"{', '.join(f.signature for f in candidates)}) in {self.where(node)}")
        return fits[0]

    def invoke(self, fn: _Func, args: list[tuple[str | None, Node]], node: Node, self_slot: int | None) -> Eval:
        what = self.where(node)
        if fn.throws:
            if self.try_depth == 0:
                raise SwiftSubsetError(f"call to throwing {fn.signature} without try in {what}")
            if self.fn is None or not self.fn.throws:
                raise SwiftSubsetError(f"call to throwing {fn.signature} in a function that does not throw: {what}")
        values = [self.expr(v, p.type) for (_, v), p in zip(args, fn.params)]
        program = self.program
        if len(values) == 1:
            only = values[0]

            def call1(frame: list[Any]) -> Any:
                return program._invoke(fn, [only(frame)], frame[self_slot] if self_slot is not None else None)
            return call1

        def call(frame: list[Any]) -> Any:
            return program._invoke(fn, [v(frame) for v in values], frame[self_slot] if self_slot is not None else None)
        return call

    def initialiser(self, decl: _TypeDecl, args: list[tuple[str | None, Node]], node: Node) -> Eval:
        what = self.where(node)
        labels = tuple(label for label, _ in args)
        program = self.program
        if decl.kind == "enum":
            if labels != ("rawValue",):
                raise self.error(node, "enum initialiser")
            raw = self.expr(args[0][1])
            cases = decl.cases

            def from_raw(frame: list[Any]) -> Any:
                value = raw(frame)
                for case, r in cases.items():
                    if r is not None and r == value and type(r) is type(_settle(value, what)):
                        return EnumValue(decl.name, case, r)
                return None
            return from_raw
        if decl.kind == "class":
            fn = self.resolve(decl.inits, labels, node)
            values = [self.expr(v, p.type) for (_, v), p in zip(args, fn.params)]
            return lambda frame: program._construct(decl, [v(frame) for v in values])
        stored = program._memberwise(decl)
        if labels != tuple(s.name for s in stored):
            raise SwiftSubsetError(f"{decl.name}({''.join((lab or '_') + ':' for lab in labels)}) is not the "
                                   f"memberwise initialiser {decl.name}({''.join(s.name + ':' for s in stored)}) in {what}")
        values = [self.expr(v, s.type) for (_, v), s in zip(args, stored)]
        names = [s.name for s in stored]
        coercers = [self._coercer(s.type, f"{decl.name}.{s.name} in {what}") for s in stored]
        defaults = [(s.name, s.default) for s in decl.stored if s.default is not None and not s.mutable]
        if defaults:
            raise self.error(node, "struct with let defaults")
        type_name = decl.name

        def make(frame: list[Any]) -> Record:
            return Record(type_name, {n: _copy(c(v(frame))) for n, c, v in zip(names, coercers, values)})
        return make

    def array_init(self, callee: Node, args: list[tuple[str | None, Node]], what: str) -> Eval:
        elements = _named(callee)
        if len(elements) != 1 or elements[0].type not in ("simple_identifier",):
            raise self.error(callee, "array type")
        elem = elements[0].text.decode()
        if [label for label, _ in args] != ["repeating", "count"]:
            raise self.error(callee, "array initialiser other than (repeating:count:)")
        repeating = self.expr(args[0][1], elem)
        count = self.expr(args[1][1])

        def make(frame: list[Any]) -> SwiftArray:
            value = _coerce(repeating(frame), elem, what)
            n = _coerce(count(frame), "Int", what)
            if n < 0:
                raise SwiftTrap(f"Can't construct Array with count < 0 ({n}) in {what}")
            if isinstance(value, list):
                return SwiftArray(elem, (_copy(value) for _ in range(n)))
            return SwiftArray(elem, [value] * n)
        return make

    def method_call(self, target: Node, name_suffix: Node, args: list[tuple[str | None, Node]], node: Node) -> Eval:
        name = name_suffix.child_by_field_name("suffix").text.decode()
        labels = tuple(label for label, _ in args)
        what = self.where(node)
        if name == "append" and labels == (None,):
            array = self.storage(target)
            value = self.expr(args[0][1])

            def append(frame: list[Any]) -> None:
                a = array(frame)
                v = value(frame)
                if a.elem is None:
                    raise SwiftSubsetError(f"append to an array of unknown type in {what}")
                a.append(_copy(_coerce(v, a.elem, what)))
            return append
        if name == "rounded":
            if not args:
                rule = "toNearestOrAwayFromZero"
            else:
                arg = args[0][1]
                if labels != (None,) or arg.type != "prefix_expression" or _prefix_op(arg) != ".":
                    raise self.error(node, "rounded(_:) takes a .rule")
                rule = arg.child_by_field_name("target").text.decode()
                if rule not in _ROUNDING:
                    raise self.error(arg, "rounding rule")
            base = self.expr(target)

            def rounded(frame: list[Any]) -> np.float32:
                v = base(frame)
                if type(v) is not np.float32:
                    raise SwiftSubsetError(f"rounded() on {_type_name(v)} in {what}")
                return _rounded(v, rule)
            return rounded
        base = self.expr(target)
        program = self.program
        values = [self.expr(v) for _, v in args]
        in_try = self.try_depth > 0

        def method(frame: list[Any]) -> Any:
            obj = base(frame)
            if not isinstance(obj, (Record, Instance)):
                raise SwiftSubsetError(f"method {name} of {_type_name(obj)} is outside the subset ({what})")
            decl = program.types[obj.type]
            fn = next((f for f in decl.methods.get(name, []) if f.labels == labels), None)
            if fn is None:
                raise SwiftSubsetError(f"{obj.type} has no method {name} with labels {labels} ({what})")
            if fn.throws and not in_try:
                raise SwiftSubsetError(f"call to throwing {fn.signature} without try in {what}")
            return program._invoke(fn, [v(frame) for v in values], obj)
        return method


class _literal:
    """The closure of a numeric literal; it keeps its constant for the compiler's fast paths."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, frame: list[Any]) -> Any:
        return self.value


def _constant(evaluate: Eval) -> Any:
    return evaluate.value if type(evaluate) is _literal else None


def _frame_setter(index: int) -> Callable[[list[Any], Any], None]:
    """A setter of frame slot ``index``."""
    def set_(frame: list[Any], value: Any) -> None:
        frame[index] = value
    return set_


def _settle_for_text(value: Any) -> Any:
    return int(value) if type(value) is IntLiteral else value
