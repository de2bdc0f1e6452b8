"""The iOS demo's Swift: every file parses, and the plain Swift logic agrees with :mod:`seemore.apps.rules`.

There is no Swift toolchain here: the files are parsed with tree-sitter-swift and the tile math
(written in a small Swift subset) is run by :mod:`seemore.apps.swift_subset` on example sizes,
then compared with the Python reference (float32 results bit for bit).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pytest

from seemore.apps import golden, rules
from seemore.apps.rules import AppRuleError, AppTiling
from seemore.apps.sources import IOS_APP, REPO, SWIFT_LOGIC
from seemore.apps.swift_subset import (
    SwiftProgram,
    SwiftSubsetError,
    SwiftThrow,
    SwiftTrap,
    imports,
    parse_swift,
    string_literal_calls,
    syntax_errors,
)
from seemore.tiling import fixed_tile_overlap, plan_axis

IOS, LOGIC = IOS_APP, SWIFT_LOGIC
# The Logic files written in the evaluated subset; Contract.swift is plain Swift (JSONSerialization).
SUBSET_FILES = ("TilePlan.swift", "Pixels.swift", "Blend.swift", "Memory.swift")


@lru_cache(maxsize=None)
def _source(name: str) -> bytes:
    return (LOGIC / name).read_bytes()


@lru_cache(maxsize=1)
def _program() -> SwiftProgram:
    return SwiftProgram({name: _source(name) for name in SUBSET_FILES})


@pytest.fixture(scope="module")
def swift() -> SwiftProgram:
    """The Logic subset files, parsed once for the module."""
    return _program()


def _tiling(tile_h: int, tile_w: int, scale: int, layout: str = "NCHW") -> AppTiling:
    return AppTiling(tile_h, tile_w, fixed_tile_overlap(tile_h, tile_w), scale, layout)


def _span(span: Any) -> tuple[int, int, int, int]:
    """A Swift Span record or a Python Span as a plain tuple."""
    if hasattr(span, "core_start"):
        return span.start, span.stop, span.core_start, span.core_stop
    return span.start, span.stop, span.coreStart, span.coreStop


def _bits(values: Any) -> list[int]:
    return np.asarray(values, dtype=np.float32).view(np.uint32).tolist()


# Photo sizes against artifact tilings: the golden cases, real photos with the exporters' tiles,
# tiles too small for an overlap (cores copied), images smaller than the tile, 1x1.
PLAN_CASES: tuple[tuple[int, int, AppTiling], ...] = tuple(
    (c.height, c.width, c.tiling) for c in golden.CASES
) + (
    (3000, 4000, _tiling(180, 320, 4)),
    (4000, 3000, _tiling(180, 320, 2, "NHWC")),
    (3024, 4032, _tiling(256, 256, 4)),
    (1080, 1920, _tiling(32, 48, 4, "NHWC")),
    (720, 1280, _tiling(512, 512, 2)),
    (5, 7, _tiling(3, 3, 2)),
    (9, 4, _tiling(1, 1, 3)),
    (13, 11, _tiling(2, 3, 2, "NHWC")),
    (23, 17, _tiling(7, 5, 3)),
    (10, 7, _tiling(16, 16, 2)),
    (1, 1, _tiling(8, 8, 3)),
    (1, 1, _tiling(1, 1, 2)),
    (1, 50, _tiling(16, 16, 4)),
    (50, 1, _tiling(16, 16, 4, "NHWC")),
    (180, 320, _tiling(180, 320, 4)),
    (181, 321, _tiling(180, 320, 4)),
)


def _swift_plan(swift: SwiftProgram, height: int, width: int, tiling: AppTiling) -> Any:
    return swift.call("tilePlan", height=height, width=width, tiling=tiling)


# ----------------------------------------------------------------------------------------- parsing


def test_every_swift_file_parses() -> None:
    files = sorted(IOS.rglob("*.swift"))
    assert {f.name for f in LOGIC.glob("*.swift")} >= set(SUBSET_FILES) | {"Contract.swift"}
    bad = {str(f.relative_to(REPO)): errors for f in files if (errors := syntax_errors(parse_swift(f.read_bytes())))}
    assert not bad, bad


def test_logic_imports_only_foundation() -> None:
    for path in sorted(LOGIC.glob("*.swift")):
        assert imports(parse_swift(path.read_bytes())) == ["Foundation"], path.name


def test_logic_is_inside_the_subset(swift: SwiftProgram) -> None:
    """Every function of the subset files compiles, not just the branches the examples reach."""
    swift.check_all()


def test_swift_api(swift: SwiftProgram) -> None:
    """The names and labels the app code calls."""
    assert set(swift.signatures()) >= {
        "fixedTileOverlap(tileH:tileW:)", "planAxis(size:tile:overlap:)", "fadeHalf(overlap:windows:)",
        "tilePlan(height:width:tiling:)", "mirrorIndex(_:size:)", "packIndex(channel:y:x:tileH:tileW:layout:)",
        "packTile(rgba:height:width:window:tiling:)", "reach(span:size:half:)", "ramp(position:centre:half:scale:)",
        "axisWeights(span:size:half:scale:)", "toByte(_:)", "bandRows(plan:scale:)",
        "memoryBytes(height:width:tiling:)", "checkFits(height:width:tiling:budgetBytes:)",
    }
    assert swift.fields("Span") == ["start", "stop", "coreStart", "coreStop"]
    assert swift.fields("Window") == ["rows", "cols"]
    assert swift.fields("AppTiling") == ["tileH", "tileW", "overlap", "scale", "layout"]
    assert swift.fields("TilePlan") == ["height", "width", "paddedH", "paddedW", "windows", "fadeHalf"]
    assert swift.fields("AppRuleError") == ["message"]
    assert swift.fields("Layout") == ["nchw", "nhwc"]


# ----------------------------------------------------------------------------------------- tile plan


def _axis_cases() -> list[tuple[int, int, int]]:
    cases = []
    for tile in (*range(1, 13), 16, 20, 24, 32, 48, 180, 320):
        for overlap in sorted({0, 1, (tile - 1) // 2, fixed_tile_overlap(tile, tile), min(16, (tile - 1) // 2)}):
            if tile - 2 * overlap < 1:
                continue
            for size in sorted({1, max(1, tile - 1), tile, tile + 1, 2 * tile - 1, 2 * tile + 3, 3 * tile + 1,
                                7 * tile // 2 + 5}):
                cases.append((size, tile, overlap))
    return cases + [(4000, 320, 16), (3000, 180, 16), (4032, 256, 16), (1920, 48, 12), (37, 16, 4)]


def plan_axis_mismatches(swift: SwiftProgram, cases: list[tuple[int, int, int]]) -> list[tuple[Any, ...]]:
    """(size, tile, overlap, swift, python) wherever Swift's planAxis differs from plan_axis(exact=True, align=1)."""
    found = []
    for size, tile, overlap in cases:
        try:
            ours = [_span(s) for s in swift.call("planAxis", size=size, tile=tile, overlap=overlap)]
        except SwiftTrap as trap:  # a broken plan may trap (an index out of range, an endless loop)
            ours = [("trap", str(trap))]
        reference = [_span(s) for s in plan_axis(size, tile, overlap, 1, exact=True)]
        if ours != reference:
            found.append((size, tile, overlap, ours, reference))
    return found


def test_plan_axis_agrees(swift: SwiftProgram) -> None:
    cases = _axis_cases()
    assert len(cases) > 300
    assert plan_axis_mismatches(swift, cases) == []


def test_plan_axis_refuses_what_the_reference_refuses(swift: SwiftProgram) -> None:
    for size, tile, overlap in ((10, 4, 2), (10, 4, -1), (40, 16, 8), (3, 0, 0)):
        with pytest.raises(ValueError):
            plan_axis(size, tile, overlap, 1, exact=True)
        with pytest.raises(SwiftTrap, match="precondition"):
            swift.call("planAxis", size=size, tile=tile, overlap=overlap)


def test_fixed_tile_overlap_agrees(swift: SwiftProgram) -> None:
    for tile_h in (*range(0, 70), 180, 256, 320, 512):
        for tile_w in (1, 3, 4, 8, 15, 16, 17, 48, 64, 65, 320):
            assert swift.call("fixedTileOverlap", tileH=tile_h, tileW=tile_w) == fixed_tile_overlap(tile_h, tile_w)


@pytest.mark.parametrize("height,width,tiling", PLAN_CASES)
def test_tile_plan_agrees(swift: SwiftProgram, height: int, width: int, tiling: AppTiling) -> None:
    reference = rules.tile_plan(height, width, tiling)
    ours = _swift_plan(swift, height, width, tiling)
    assert (ours.height, ours.width, ours.paddedH, ours.paddedW) == (
        reference.height, reference.width, reference.padded_h, reference.padded_w)
    assert [(_span(w.rows), _span(w.cols)) for w in ours.windows] == [
        (_span(w.rows), _span(w.cols)) for w in reference.windows]
    assert ours.fadeHalf == reference.fade_half
    assert swift.call("bandRows", plan=ours, scale=tiling.scale) == rules.band_rows(reference, tiling.scale)
    assert swift.call("memoryBytes", height=height, width=width, tiling=tiling) == rules.memory_bytes(
        height, width, tiling)


def test_fade_half_agrees(swift: SwiftProgram) -> None:
    for height, width, tiling in PLAN_CASES[:14]:
        windows = rules.tile_plan(height, width, tiling).windows
        swift_windows = _swift_plan(swift, height, width, tiling).windows
        for overlap in (0, 1, 2, 3, 7, 8, 16, 40, 1000):
            assert swift.call("fadeHalf", overlap=overlap, windows=swift_windows) == rules.fade_half(overlap, windows)


def _raises_same(swift_call: Any, python_call: Any) -> None:
    with pytest.raises((AppRuleError, ValueError)) as expected:
        python_call()
    with pytest.raises(SwiftThrow) as got:
        swift_call()
    assert got.value.value.type == "AppRuleError"
    assert got.value.value.message == str(expected.value)


@pytest.mark.parametrize("height,width,tiling", [
    (0, 5, _tiling(16, 16, 4)),
    (5, 0, _tiling(16, 16, 4)),
    (-3, 2, _tiling(16, 16, 4)),
    (10, 10, AppTiling(4, 4, 2, 2, "NCHW")),  # overlap too large for the tile
    (3, 30, AppTiling(8, 8, 4, 2, "NHWC")),  # the columns refuse, the rows fit one window
    (30, 30, AppTiling(8, 8, -1, 2, "NCHW")),
])
def test_bad_plans_raise_the_same_message(swift: SwiftProgram, height: int, width: int, tiling: AppTiling) -> None:
    _raises_same(lambda: swift.call("tilePlan", height=height, width=width, tiling=tiling),
                 lambda: rules.tile_plan(height, width, tiling))
    _raises_same(lambda: swift.call("memoryBytes", height=height, width=width, tiling=tiling),
                 lambda: rules.memory_bytes(height, width, tiling))


# ----------------------------------------------------------------------------------------- pixels


def test_mirror_index_agrees(swift: SwiftProgram) -> None:
    for size in range(1, 10):
        for i in range(-45, 70):
            assert swift.call("mirrorIndex", i, size=size) == rules.mirror_index(i, size), (i, size)


def test_pack_index_agrees(swift: SwiftProgram) -> None:
    for tile_h, tile_w in ((3, 5), (4, 2), (1, 1)):
        for layout in rules.LAYOUTS:
            seen = set()
            for channel in range(3):
                for y in range(tile_h):
                    for x in range(tile_w):
                        index = swift.call("packIndex", channel=channel, y=y, x=x, tileH=tile_h, tileW=tile_w,
                                           layout=layout)
                        assert index == rules.pack_index(channel, y, x, tile_h, tile_w, layout)
                        seen.add(index)
            assert seen == set(range(3 * tile_h * tile_w))


@pytest.mark.parametrize("case", golden.CASES, ids=lambda c: c.name)
def test_pack_tile_agrees(swift: SwiftProgram, case: golden.GoldenCase) -> None:
    tiling = case.tiling
    photo = golden.sample_photo(case.height, case.width, 7)
    plan = rules.tile_plan(case.height, case.width, tiling)
    ours = _swift_plan(swift, case.height, case.width, tiling)
    for window, swift_window in zip(plan.windows, ours.windows):
        packed = swift.call("packTile", rgba=photo.reshape(-1), height=case.height, width=case.width,
                            window=swift_window, tiling=tiling)
        assert _bits(packed) == _bits(rules.pack_tile(photo, window, tiling))


# ----------------------------------------------------------------------------------------- blend


def test_ramp_agrees(swift: SwiftProgram) -> None:
    for scale in (1, 2, 3, 4):
        for half in (0, 1, 2, 3, 8):
            for centre in (0, 5, 12):
                for position in range(max(0, (centre - half - 1) * scale), (centre + half + 1) * scale + 1):
                    ours = swift.call("ramp", position=position, centre=centre, half=half, scale=scale)
                    assert type(ours) is np.float32
                    assert _bits(ours) == _bits(rules.ramp(position, centre, half, scale))


@pytest.mark.parametrize("height,width,tiling", PLAN_CASES)
def test_reach_and_axis_weights_agree(swift: SwiftProgram, height: int, width: int, tiling: AppTiling) -> None:
    plan = rules.tile_plan(height, width, tiling)
    ours = _swift_plan(swift, height, width, tiling)
    s = tiling.scale
    pairs = {}
    for window, swift_window in zip(plan.windows, ours.windows):
        pairs[(_span(window.rows), plan.padded_h)] = (window.rows, swift_window.rows)
        pairs[(_span(window.cols), plan.padded_w)] = (window.cols, swift_window.cols)
    keys = sorted(pairs)
    if len(keys) > 12:  # big photos: the first, second and last spans of both axes are all the kinds there are
        by_size: dict[int, list[Any]] = {}
        for key in keys:
            by_size.setdefault(key[1], []).append(key)
        keys = [k for group in by_size.values() for k in group[:2] + group[-1:]]
    for halves in ({plan.fade_half}, {None, 0, 1, 3}):
        for key in keys:
            span, swift_span = pairs[key]
            size = key[1]
            for half in halves:
                reach = swift.call("reach", span=swift_span, size=size, half=half)
                assert tuple(reach) == rules.reach(span, size, half)
                lo, hi, weights = swift.call("axisWeights", span=swift_span, size=size, half=half, scale=s)
                ref_lo, ref_hi, ref_weights = rules.axis_weights(span, size, half, s)
                assert (lo, hi) == (ref_lo, ref_hi)
                assert _bits(weights) == _bits(ref_weights)


def test_to_byte_agrees(swift: SwiftProgram) -> None:
    values = list(np.linspace(-0.25, 1.25, 1501, dtype=np.float32))
    for k in range(256):  # around every rounding tie k + 0.5
        tie = np.float32((k + 0.5) / 255)
        values += [np.nextafter(tie, np.float32(-1)), tie, np.nextafter(tie, np.float32(2))]
    values += [np.float32(v) for v in (0.0, -0.0, 1.0, 1e-30, -1e30, 1e30, np.inf, -np.inf)]
    ours = [swift.call("toByte", v) for v in values]
    assert ours == rules.to_byte(np.array(values, dtype=np.float32)).tolist()
    assert swift.call("toByte", np.float32("nan")) == 0  # documented: NaN gives 0 instead of trapping


# Stitching in the interpreter is slow (a Swift call per output value): the cases that cover its
# branches (blend both ways, NHWC, one window, cores copied, one column of windows).
STITCH_CASES = (
    golden.GoldenCase("grid_nchw_x2", 21, 26, 8, 12, 2, "NCHW"),
    golden.GoldenCase("grid_nhwc_x3", 45, 29, 20, 16, 3, "NHWC"),
    golden.GoldenCase("small_pad_x2", 10, 7, 16, 16, 2, "NHWC"),
    golden.GoldenCase("one_pixel_x3", 1, 1, 8, 8, 3, "NCHW"),
    golden.GoldenCase("one_column_x2", 40, 12, 16, 16, 2, "NHWC"),
    golden.GoldenCase("no_overlap_x2", 7, 5, 3, 3, 2, "NCHW"),
)


@pytest.mark.parametrize("case", STITCH_CASES, ids=lambda c: c.name)
def test_row_stitcher_agrees(swift: SwiftProgram, case: golden.GoldenCase) -> None:
    tiling = case.tiling
    photo = golden.sample_photo(case.height, case.width, 3)
    plan = rules.tile_plan(case.height, case.width, tiling)
    outputs = [golden.fake_model(rules.pack_tile(photo, w, tiling), i, tiling) for i, w in enumerate(plan.windows)]
    reference = rules.stitch(plan, tiling, outputs)
    stitcher = swift.call("RowStitcher", plan=_swift_plan(swift, case.height, case.width, tiling), tiling=tiling)
    row_bytes = case.width * case.scale * 3
    rows: list[int] = []
    for output in outputs:
        first_row, finished = stitcher.call("add", output)
        assert len(finished) % row_bytes == 0
        if finished:
            assert first_row == len(rows) // row_bytes  # rows come top to bottom, without gaps
        rows.extend(finished)
    assert np.array_equal(np.array(rows, dtype=np.uint8).reshape(reference.shape), reference)


# ----------------------------------------------------------------------------------------- memory


@pytest.mark.parametrize("height,width,tiling", PLAN_CASES[::2])
def test_check_fits_agrees(swift: SwiftProgram, height: int, width: int, tiling: AppTiling) -> None:
    need = rules.memory_bytes(height, width, tiling)
    for budget in (need, need + 1, need - 1, need // 2, (1 << 20) - 1, 1, 0, -5, -(3 << 20) - 7, 1 << 40):
        if budget >= need:
            rules.check_fits(height, width, tiling, budget)
            assert swift.call("checkFits", height=height, width=width, tiling=tiling, budgetBytes=budget) is None
        else:
            _raises_same(lambda: swift.call("checkFits", height=height, width=width, tiling=tiling, budgetBytes=budget),
                         lambda: rules.check_fits(height, width, tiling, budget))


def test_check_fits_refuses_an_empty_image(swift: SwiftProgram) -> None:
    tiling = _tiling(32, 48, 4)
    _raises_same(lambda: swift.call("checkFits", height=0, width=10, tiling=tiling, budgetBytes=1 << 30),
                 lambda: rules.check_fits(0, 10, tiling, 1 << 30))


# ----------------------------------------------------------------------------------------- the checker itself

MUTATIONS = (
    ("coreStop = (stop + starts[i + 1]) / 2", "coreStop = (stop + starts[i + 1] + 1) / 2"),  # core boundary
    ("while start < last {", "while start <= last {"),  # a duplicate last window
    ("let step = tile - 2 * overlap", "let step = tile - 2 * overlap + 1"),  # windows one pixel further apart
)


@pytest.mark.parametrize("old,new", MUTATIONS)
def test_a_mutated_plan_axis_is_caught(old: str, new: str) -> None:
    source = _source("TilePlan.swift").decode()
    assert source.count(old) == 1
    mutated = SwiftProgram({"TilePlan.swift": source.replace(old, new)}, max_loop=100_000)
    assert plan_axis_mismatches(mutated, _axis_cases())


UNSUPPORTED = (
    ("func f(_ xs: [Int]) -> [Int] {\n    return xs.map { $0 + 1 }\n}\n", "lambda_literal", 2),
    ("func f(_ x: Int) -> Int {\n    switch x {\n    default: return 2\n    }\n}\n", "switch_statement", 2),
    ("func f(_ x: Int) -> Int {\n    var i = 0\n    repeat { i += 1 } while i < x\n    return i\n}\n",
     "repeat_while_statement", 3),
    ("func f(_ x: inout Int) {\n    x += 1\n}\n", "parameter", 1),
    ("extension Int {\n    func twice() -> Int { return self * 2 }\n}\n", "class_declaration", 1),
)


@pytest.mark.parametrize("source,node_type,line", UNSUPPORTED)
def test_unsupported_syntax_is_refused(source: str, node_type: str, line: int) -> None:
    with pytest.raises(SwiftSubsetError) as info:
        SwiftProgram({"X.swift": source}).check_all()
    message = str(info.value)
    assert node_type in message and f"X.swift:{line}" in message, message


SEMANTICS = """
func div(_ a: Int, _ b: Int) -> Int { return a / b }
func rem(_ a: Int, _ b: Int) -> Int { return a % b }
func square(_ a: Int) -> Int { return a * a }
func fadd(_ a: Float, _ b: Float) -> Float { return a + b }
func third(_ a: Float) -> Float { return a / 3 }
func fromInt(_ a: Int) -> Float { return Float(a) }
func truncate(_ a: Float) -> Int { return Int(a) }
func both(_ a: Int, _ b: Int, _ c: Int, _ d: Int) -> Bool { return a == b && c != d }
func notFirst(_ a: Bool, _ b: Bool) -> Bool { return !a && b }
func mixed(_ a: Int, _ b: Int) -> Int { return -a * b + 2 * max(a, b) - a - b }
func pick(_ x: Bool, _ y: Bool, _ a: Int, _ b: Int, _ c: Int) -> Int { return x ? a : y ? b : c }
func smallest(_ a: Float, _ b: Float) -> Float { return min(a, b) }
func largest(_ a: Float, _ b: Float) -> Float { return max(a, b) }
func element(_ xs: [Int], _ i: Int) -> Int { return xs[i] }
func span(_ a: Int, _ b: Int) -> Int {
    var n = 0
    for _ in a..<b { n += 1 }
    return n
}
func copied(_ xs: [Int]) -> [Int] {
    var a = xs
    let b = a
    a.append(7)
    return b
}
func mixedTypes(_ a: Int, _ b: Float) -> Float { return Float(a) * b + a }
func untypedReal(_ a: Float) -> Float {
    let h = 0.5
    return a * h
}
func mustTry() throws -> Int { return 1 }
func forgotTry() throws -> Int { return mustTry() }
"""


def test_swift_semantics() -> None:
    """The evaluator follows Swift where Python differs: Int division and remainder, overflow traps,
    float32 rounding, operator precedence (re-associated: tree-sitter-swift groups it otherwise),
    value semantics, bounds traps, and the compile errors it can see."""
    program = SwiftProgram({"S.swift": SEMANTICS})
    assert [program.call("div", a, b) for a, b in ((7, 2), (-7, 2), (7, -2), (-7, -2))] == [3, -3, -3, 3]
    assert [program.call("rem", a, b) for a, b in ((7, 2), (-7, 2), (7, -2), (-7, -2))] == [1, -1, 1, -1]
    with pytest.raises(SwiftTrap, match="overflow"):
        program.call("square", 1 << 32)
    with pytest.raises(SwiftTrap, match="division by zero"):
        program.call("div", 1, 0)
    a, b = np.float32(16777216.0), np.float32(1.0)
    assert program.call("fadd", a, b) == np.float32(a + b) == a  # float32 rounding, not float64
    assert _bits(program.call("third", np.float32(1.0))) == _bits(np.float32(1.0) / np.float32(3.0))
    assert program.call("fromInt", (1 << 24) + 1) == np.float32(1 << 24)
    assert [program.call("truncate", np.float32(v)) for v in (2.7, -2.7)] == [2, -2]
    with pytest.raises(SwiftTrap):
        program.call("truncate", np.float32("inf"))
    assert program.call("both", 1, 1, 2, 3) is True and program.call("both", 1, 2, 2, 3) is False
    assert program.call("notFirst", False, False) is False  # `!(a && b)` would be true
    assert program.call("notFirst", False, True) is True
    assert program.call("mixed", 3, 5) == -3 * 5 + 2 * 5 - 3 - 5
    assert [program.call("pick", x, y, 1, 2, 3) for x, y in ((True, True), (False, True), (False, False))] == [1, 2, 3]
    # Swift's min(x, y) is `y < x ? y : x` and max(x, y) is `y >= x ? y : x` (ties: min takes x, max takes y)
    zero, negative_zero = np.float32(0.0), np.float32(-0.0)
    assert _bits(program.call("smallest", zero, negative_zero)) == _bits(zero)
    assert _bits(program.call("largest", zero, negative_zero)) == _bits(negative_zero)
    assert program.call("element", [4, 5], 1) == 5
    with pytest.raises(SwiftTrap, match="out of range"):
        program.call("element", [4, 5], -1)  # no Python negative indexing
    assert program.call("span", 2, 5) == 3
    with pytest.raises(SwiftTrap, match="lowerBound"):
        program.call("span", 5, 2)
    assert program.call("copied", [1, 2]) == [1, 2]
    with pytest.raises(SwiftSubsetError, match="explicit conversion"):
        program.call("mixedTypes", 1, np.float32(2.0))
    with pytest.raises(SwiftSubsetError, match="Double"):
        program.call("untypedReal", np.float32(2.0))
    with pytest.raises(SwiftSubsetError, match="without try"):
        program.call("forgotTry")


DECLARATIONS = """
enum Mode: String { case fast = "F"; case slow = "S" }
struct Box {
    let width: Int
    let height: Int
    var area: Int { return width * height }
    func scaled(by factor: Int) -> Box { return Box(width: width * factor, height: height * factor) }
}
struct Failure: Error { let message: String }
final class Counter {
    private var total = 0
    private let step: Int
    private var seen: [Int] = []
    init(step: Int) {
        self.step = step
    }
    func add(_ n: Int) -> (total: Int, count: Int) {
        total += n * step
        seen.append(n)
        return (total: total, count: seen.count)
    }
}
func modeName(_ raw: String) -> String {
    guard let mode = Mode(rawValue: raw) else {
        return "none"
    }
    return mode == .fast ? "fast \\(mode.rawValue)" : "slow"
}
func firstBig(_ xs: [Int], over limit: Int) -> Int? {
    for x in xs {
        if x > limit {
            return x
        }
    }
    return nil
}
func describeBig(_ xs: [Int]) throws -> String {
    if let big = firstBig(xs, over: 10), big % 2 == 0 {
        let (lo, hi) = (big - 1, big + 1)
        return "\\(lo)..\\(hi) of \\(Box(width: 2, height: 3).scaled(by: 2).area)"
    }
    throw Failure(message: "no even number over 10 in \\(xs.count) (\\(firstBig(xs, over: 100) ?? -1))")
}
"""


def test_swift_declarations() -> None:
    """Structs (computed properties, methods), enums with raw values, classes with state, if/guard let."""
    program = SwiftProgram({"D.swift": DECLARATIONS})
    program.check_all()
    assert [program.call("modeName", raw) for raw in ("F", "S", "x")] == ["fast F", "slow", "none"]
    assert program.call("firstBig", [1, 12, 30], over=10) == 12 and program.call("firstBig", [1], over=10) is None
    assert program.call("describeBig", [3, 14]) == "13..15 of 24"
    with pytest.raises(SwiftThrow) as thrown:
        program.call("describeBig", [3, 13])
    assert str(thrown.value) == "no even number over 10 in 2 (-1)"
    counter = program.call("Counter", step=3)
    assert tuple(counter.call("add", 2)) == (6, 1)
    assert counter.call("add", 5).total == 21
    box = program.call("Box", width=2, height=5)
    assert program.fields("Box") == ["width", "height"] and (box.width, box.height) == (2, 5)


# ----------------------------------------------------------------------------------------- contract


def test_contract_reads_exactly_the_contract_keys() -> None:
    tree = parse_swift(_source("Contract.swift"))
    calls = string_literal_calls(tree, "json", ("string", "int", "intList", "value"))
    assert calls, "Contract.swift reads nothing through json.string/int/intList"
    dynamic = [method for method, key in calls if key is None]
    assert not dynamic, f"reader calls without a single string literal key: {dynamic}"
    keys = [key for _, key in calls]
    assert sorted(keys) == sorted(rules.CONTRACT_KEYS)
