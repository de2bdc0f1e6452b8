"""The Android demo's Gradle build read on Linux: version catalog, app module and manifest checks.

No Android SDK or Maven is reachable here, so the build is checked as text: every version in
``gradle/libs.versions.toml`` pinned, the ExecuTorch AAR at the Python ``executorch`` version,
every ``libs.*`` alias the build scripts use present in the catalog, minSdk 26 and the two ABIs
the AAR ships, every Kotlin file inside a source directory the app module compiles, the
activities of the manifest defined in its sources, and the Gradle wrapper pinned.
"""

from __future__ import annotations

import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

MIN_SDK = 26
ABIS = ("arm64-v8a", "x86_64")
NAMESPACE = "org.seemore.demo"
EXECUTORCH_ARTIFACTS = ("executorch-android", "executorch-android-vulkan")
# A pinned version: dotted numbers, optionally a pre-release suffix; never '+', a range or 'latest'.
_PINNED = re.compile(r"\d+(\.\d+)*(-[A-Za-z0-9.]+)?")
# BOM-managed libraries take their version from the BOM, which itself is pinned.
_BOM_GROUPS = ("androidx.compose.",)
_ANDROID_NS = "{http://schemas.android.com/apk/res/android}"


def _catalog_aliases(section: dict[str, Any]) -> set[str]:
    """Catalog keys as Gradle's type-safe accessors spell them (``a-b_c`` -> ``a.b.c``)."""
    return {re.sub(r"[-_]", ".", key) for key in section}


def catalog_problems(catalog: dict[str, Any], executorch_version: str) -> list[str]:
    """What is unpinned or inconsistent in a parsed ``libs.versions.toml``."""
    problems = []
    versions = catalog.get("versions", {})
    for key, value in versions.items():
        if not isinstance(value, str) or not _PINNED.fullmatch(value):
            problems.append(f"version {key} = {value!r} is not pinned to one release")
    for section in ("libraries", "plugins"):
        for key, entry in catalog.get(section, {}).items():
            ref = entry.get("version", {}).get("ref") if isinstance(entry.get("version"), dict) else None
            if ref is not None and ref not in versions:
                problems.append(f"{section}.{key} refers to version {ref!r}, which is not in [versions]")
            elif ref is None and isinstance(entry.get("version"), str) and not _PINNED.fullmatch(entry["version"]):
                problems.append(f"{section}.{key} version {entry['version']!r} is not pinned")
            elif ref is None and "version" not in entry and not str(entry.get("group", "")).startswith(_BOM_GROUPS):
                problems.append(f"{section}.{key} has no version and no BOM manages it")
    for name in EXECUTORCH_ARTIFACTS:
        entries = [e for e in catalog.get("libraries", {}).values() if e.get("group") == "org.pytorch"
                   and e.get("name") == name]
        if not entries:
            problems.append(f"org.pytorch:{name} is not in the catalog")
        for entry in entries:
            version = versions.get(entry.get("version", {}).get("ref", ""), entry.get("version"))
            if version != executorch_version:
                problems.append(f"org.pytorch:{name} is {version}, the Python executorch is {executorch_version}")
    return problems


def build_script_problems(script: str, catalog: dict[str, Any], what: str) -> list[str]:
    """Aliases a ``*.gradle.kts`` uses (``libs.x.y``, ``libs.plugins.x``) that the catalog lacks."""
    problems = []
    libraries, plugins = _catalog_aliases(catalog.get("libraries", {})), _catalog_aliases(catalog.get("plugins", {}))
    versions = _catalog_aliases(catalog.get("versions", {}))
    code = re.sub(r"(^|\s)//.*$", "", re.sub(r"/\*.*?\*/", "", script, flags=re.S), flags=re.M)
    for alias in sorted(set(re.findall(r"\blibs\.([A-Za-z0-9_.]+[A-Za-z0-9_])", code))):
        if alias.startswith("plugins."):
            ok = alias[len("plugins."):] in plugins
        elif alias.startswith("versions."):
            ok = alias[len("versions."):].removesuffix(".get") in versions
        else:
            ok = alias in libraries
        if not ok:
            problems.append(f"{what}: libs.{alias} is not in gradle/libs.versions.toml")
    return problems


def app_module_problems(root: Path) -> list[str]:
    """minSdk, ABIs, source directories and manifest of ``app/``; ``root`` is the Android project."""
    app = root / "app"
    script = (app / "build.gradle.kts").read_text(encoding="utf-8")
    problems = []
    min_sdk = re.search(r"\bminSdk\s*=\s*(\d+)", script)
    if not min_sdk or int(min_sdk.group(1)) != MIN_SDK:
        problems.append(f"app: minSdk is {min_sdk.group(1) if min_sdk else 'unset'}, expected {MIN_SDK} "
                        "(the ExecuTorch AAR's native code is built for android-26)")
    abis = re.search(r"abiFilters\s*\+=\s*listOf\(([^)]*)\)", script)
    found = tuple(re.findall(r'"([^"]+)"', abis.group(1))) if abis else ()
    if sorted(found) != sorted(ABIS):
        problems.append(f"app: abiFilters {list(found)}, expected {list(ABIS)} (the ABIs the AAR ships)")
    dirs = re.search(r"java\.srcDirs\(([^)]*)\)", script)
    source_dirs = [app / d for d in re.findall(r'"([^"]+)"', dirs.group(1))] if dirs else [app / "src/main/java"]
    for path in sorted((app / "src").rglob("*.kt")):
        if "logicCheck" in path.relative_to(app).parts:
            continue  # the JVM checker is compiled by the tests, not by the app
        if not any(d in path.parents for d in source_dirs):
            problems.append(f"app: {path.relative_to(root)} is in no source directory of the app module")
    manifest = ET.parse(app / "src" / "main" / "AndroidManifest.xml").getroot()
    sources = "\n".join(p.read_text(encoding="utf-8") for d in source_dirs for p in d.rglob("*.kt"))
    for activity in manifest.iter("activity"):
        name = activity.get(f"{_ANDROID_NS}name", "")
        simple = name.rsplit(".", 1)[-1]
        if not re.search(rf"\bclass\s+{re.escape(simple)}\b", sources):
            problems.append(f"manifest: activity {name} is not defined in the app's sources")
    if f'namespace = "{NAMESPACE}"' not in script:
        problems.append(f"app: namespace is not {NAMESPACE}")
    return problems


def wrapper_problems(root: Path) -> list[str]:
    """The Gradle wrapper must name one Gradle release."""
    props = root / "gradle" / "wrapper" / "gradle-wrapper.properties"
    if not props.is_file():
        return ["gradle/wrapper/gradle-wrapper.properties is missing"]
    url = re.search(r"distributionUrl=(\S+)", props.read_text(encoding="utf-8"))
    if not url or not re.search(r"gradle-\d+(\.\d+)+-(bin|all)\.zip$", url.group(1)):
        return [f"gradle wrapper distributionUrl {url.group(1) if url else None!r} names no pinned release"]
    return []


def android_project_problems(root: Path, executorch_version: str) -> list[str]:
    """Every problem of the Android project at ``root`` (empty: consistent)."""
    catalog = tomllib.loads((root / "gradle" / "libs.versions.toml").read_text(encoding="utf-8"))
    problems = catalog_problems(catalog, executorch_version)
    for script in sorted(root.rglob("*.gradle.kts")):
        if "build" not in script.relative_to(root).parts[:-1]:
            problems += build_script_problems(script.read_text(encoding="utf-8"), catalog,
                                              script.relative_to(root).as_posix())
    return problems + app_module_problems(root) + wrapper_problems(root)
