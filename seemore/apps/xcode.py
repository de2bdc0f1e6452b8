"""The iOS demo's Xcode project read on Linux: an OpenStep-plist parser and the consistency checks.

No Xcode runs here, so ``project.pbxproj`` is checked as data: every object id well-formed and
resolvable, every build file in exactly one phase, the Sources phase exactly the ``.swift`` files
on disk (the plain-Swift ``Logic/`` included), the ``Models`` folder a folder reference in the
Resources phase, the ExecuTorch Swift package pinned to our Python ``executorch`` version, and
the build settings the README promises (iOS 17, bundle id, ``-all_load``, the Photos usage key).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ID = re.compile(r"[0-9A-F]{24}")
_BARE = re.compile(r"[A-Za-z0-9_$+/:.\-]+")
IOS_DEPLOYMENT_TARGET = "17.0"
BUNDLE_ID = "org.seemore.demo"
EXECUTORCH_PRODUCTS = ("backend_coreml", "backend_xnnpack", "executorch", "kernels_optimized")


class PlistError(ValueError):
    """``project.pbxproj`` is not a well-formed OpenStep property list; one line."""


class _Parser:
    """Recursive-descent reader of the OpenStep plist subset Xcode writes (dicts, arrays, strings)."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def _skip(self) -> None:
        while self.pos < len(self.text):
            if self.text[self.pos].isspace():
                self.pos += 1
            elif self.text.startswith("/*", self.pos):
                end = self.text.find("*/", self.pos)
                if end < 0:
                    self._fail("unterminated comment")
                self.pos = end + 2
            elif self.text.startswith("//", self.pos):
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end + 1
            else:
                return

    def _fail(self, what: str) -> None:
        line = self.text.count("\n", 0, self.pos) + 1
        raise PlistError(f"project.pbxproj line {line}: {what}")

    def _expect(self, char: str) -> None:
        self._skip()
        if not self.text.startswith(char, self.pos):
            self._fail(f"expected {char!r}")
        self.pos += 1

    def value(self) -> Any:
        """The next value: dict, list or string."""
        self._skip()
        if self.pos >= len(self.text):
            self._fail("unexpected end")
        char = self.text[self.pos]
        if char == "{":
            self.pos += 1
            out: dict[str, Any] = {}
            while True:
                self._skip()
                if self.text.startswith("}", self.pos):
                    self.pos += 1
                    return out
                key = self.value()
                self._expect("=")
                item = self.value()
                self._expect(";")
                if key in out:
                    self._fail(f"duplicate key {key}")
                out[key] = item
        if char == "(":
            self.pos += 1
            items: list[Any] = []
            while True:
                self._skip()
                if self.text.startswith(")", self.pos):
                    self.pos += 1
                    return items
                items.append(self.value())
                self._skip()
                if self.text.startswith(",", self.pos):
                    self.pos += 1
                elif not self.text.startswith(")", self.pos):
                    self._fail("expected ',' or ')'")
        if char == '"':
            end, chars = self.pos + 1, []
            while end < len(self.text) and self.text[end] != '"':
                if self.text[end] == "\\":
                    end += 1
                chars.append(self.text[end])
                end += 1
            if end >= len(self.text):
                self._fail("unterminated string")
            self.pos = end + 1
            return "".join(chars)
        match = _BARE.match(self.text, self.pos)
        if not match:
            self._fail(f"unexpected {char!r}")
        self.pos = match.end()
        return match.group(0)


def parse_pbxproj(text: str) -> dict[str, Any]:
    """The property list of a ``project.pbxproj``; :class:`PlistError` when malformed."""
    if not text.startswith("// !$*UTF8*$!"):
        raise PlistError("project.pbxproj: missing the '// !$*UTF8*$!' header")
    parser = _Parser(text)
    root = parser.value()
    parser._skip()
    if parser.pos != len(text):
        parser._fail("text after the root object")
    if not isinstance(root, dict) or not isinstance(root.get("objects"), dict):
        raise PlistError("project.pbxproj: no 'objects' table")
    return root


@dataclass(frozen=True)
class XcodeProject:
    """The parsed project and where its paths are relative to."""

    root: dict[str, Any]
    folder: Path  # the folder holding the .xcodeproj

    @property
    def objects(self) -> dict[str, dict[str, Any]]:
        """Objects by id."""
        return self.root["objects"]

    def of_isa(self, isa: str) -> list[str]:
        """Ids of every object of one class."""
        return [k for k, o in self.objects.items() if o.get("isa") == isa]

    @functools.cached_property
    def _parents(self) -> dict[str, str]:
        """Group of every child object."""
        return {child: key for key in self.of_isa("PBXGroup") for child in self.objects[key].get("children", [])}

    def path_of(self, ref: str) -> str:
        """A file reference's path relative to the project folder, through its groups."""
        parents = self._parents
        parts, key = [], ref
        while key in self.objects:
            obj = self.objects[key]
            if "path" in obj:
                parts.append(obj["path"])
            if obj.get("sourceTree") not in (None, "<group>"):
                break
            key = parents.get(key, "")
        return "/".join(reversed(parts))


def load_project(xcodeproj: str | Path) -> XcodeProject:
    """Read ``<name>.xcodeproj/project.pbxproj``."""
    xcodeproj = Path(xcodeproj)
    return XcodeProject(parse_pbxproj((xcodeproj / "project.pbxproj").read_text(encoding="utf-8")), xcodeproj.parent)


def _ids(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [i for k, v in value.items() for i in (*_ids(k), *_ids(v))]
    if isinstance(value, list):
        return [i for v in value for i in _ids(v)]
    return [value] if isinstance(value, str) and _ID.fullmatch(value) else []


def project_problems(project: XcodeProject, app_folder: str, executorch_version: str) -> list[str]:
    """Everything inconsistent in the project (empty: consistent); ``app_folder`` holds the sources."""
    objects, problems = project.objects, []
    problems += [f"object id {k!r} is not 24 hex digits" for k in objects if not _ID.fullmatch(k)]
    problems += [f"dangling reference {r}" for r in sorted(set(_ids(objects))) if r not in objects]
    targets = project.of_isa("PBXNativeTarget")
    if len(targets) != 1:
        return problems + [f"expected one app target, found {len(targets)}"]
    target = objects[targets[0]]
    phases = {objects[p]["isa"]: objects[p] for p in target.get("buildPhases", []) if p in objects}
    in_phases = [f for phase in phases.values() for f in phase.get("files", [])]
    for build_file in project.of_isa("PBXBuildFile"):
        if in_phases.count(build_file) != 1:
            problems.append(f"build file {build_file} is in {in_phases.count(build_file)} build phases")
        obj = objects[build_file]
        kind = objects.get(obj.get("fileRef") or obj.get("productRef", ""), {}).get("isa")
        if kind not in ("PBXFileReference", "XCSwiftPackageProductDependency"):
            problems.append(f"build file {build_file} points at no file or package product")
    for ref in project.of_isa("PBXFileReference"):
        if objects[ref].get("sourceTree") == "<group>" and not (project.folder / project.path_of(ref)).exists():
            problems.append(f"file reference {project.path_of(ref)} does not exist")
    sources = {project.path_of(objects[f]["fileRef"]) for f in phases.get("PBXSourcesBuildPhase", {}).get("files", [])
               if "fileRef" in objects.get(f, {})}
    on_disk = {p.relative_to(project.folder).as_posix() for p in (project.folder / app_folder).rglob("*.swift")}
    problems += [f"{p} is on disk but not in the Sources phase" for p in sorted(on_disk - sources)]
    problems += [f"{p} is in the Sources phase but not on disk" for p in sorted(sources - on_disk)]
    resources = {project.path_of(objects[f]["fileRef"]): objects[objects[f]["fileRef"]]
                 for f in phases.get("PBXResourcesBuildPhase", {}).get("files", []) if "fileRef" in objects.get(f, {})}
    if resources.get(f"{app_folder}/Models", {}).get("lastKnownFileType") != "folder":
        problems.append(f"{app_folder}/Models is not a folder reference in the Resources phase")
    packages = [objects[k] for k in project.of_isa("XCRemoteSwiftPackageReference")]
    want = {"kind": "branch", "branch": f"swiftpm-{executorch_version}"}
    if not any(p.get("requirement") == want for p in packages):
        problems.append(f"no Swift package pinned to branch swiftpm-{executorch_version} (the Python executorch)")
    products = sorted(objects[d].get("productName", "") for d in target.get("packageProductDependencies", []))
    if products != sorted(EXECUTORCH_PRODUCTS):
        problems.append(f"package products {products}, expected {sorted(EXECUTORCH_PRODUCTS)}")
    configs = objects.get(target.get("buildConfigurationList", ""), {}).get("buildConfigurations", [])
    project_configs = objects.get(objects.get(project.root.get("rootObject", ""), {}).get("buildConfigurationList", ""),
                                  {}).get("buildConfigurations", [])
    for config in configs:
        name, settings = objects[config].get("name"), objects[config].get("buildSettings", {})
        for key, value in (("PRODUCT_BUNDLE_IDENTIFIER", BUNDLE_ID), ("GENERATE_INFOPLIST_FILE", "YES")):
            if settings.get(key) != value:
                problems.append(f"{name}: {key} is {settings.get(key)!r}, expected {value!r}")
        flags = settings.get("OTHER_LDFLAGS", [])
        if "-all_load" not in (flags if isinstance(flags, list) else [flags]):
            problems.append(f"{name}: OTHER_LDFLAGS lacks -all_load (ExecuTorch backends register at load)")
        if "INFOPLIST_KEY_NSPhotoLibraryAddUsageDescription" not in settings:
            problems.append(f"{name}: no NSPhotoLibraryAddUsageDescription (saving to Photos)")
    for config in [*configs, *project_configs]:
        target_os = objects[config].get("buildSettings", {}).get("IPHONEOS_DEPLOYMENT_TARGET")
        if target_os not in (None, IOS_DEPLOYMENT_TARGET):
            problems.append(f"{objects[config].get('name')}: deployment target {target_os}, expected {IOS_DEPLOYMENT_TARGET}")
    if not any(objects[c].get("buildSettings", {}).get("IPHONEOS_DEPLOYMENT_TARGET") == IOS_DEPLOYMENT_TARGET
               for c in [*configs, *project_configs]):
        problems.append(f"no IPHONEOS_DEPLOYMENT_TARGET = {IOS_DEPLOYMENT_TARGET}")
    return problems
