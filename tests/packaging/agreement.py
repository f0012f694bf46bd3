#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Packaging agreement: every place that states pgcoro's version, dependencies, their minimum
versions, the install layout and the CMake target agrees with CMakeLists.txt, and each recipe
is parsed the way its tool reads it (JSON for vcpkg manifests, Python's parser for the Conan
recipe, CMake command syntax for CMake files and portfiles).

    agreement.py <pgcoro source dir>      exit 0: all agree; 1: the problems, one per line

tests/packaging/agreement_mutations.py breaks the recipes one way at a time and requires this
checker to fail on each (and to pass on valid variants such as a Boost version range)."""
import ast
import fnmatch
import json
import os
import re
import sys

# Each tool's name for each of pgcoro's dependencies (None: not a dependency to compare).
NAMES = {
    "cmake": {"Boost": "boost", "PostgreSQL": "libpq", "tl-expected": "tl-expected",
              "Threads": None},
    "vcpkg": {"boost-asio": "boost", "libpq": "libpq", "tl-expected": "tl-expected",
              "vcpkg-cmake": None, "vcpkg-cmake-config": None},
    "conan": {"boost": "boost", "libpq": "libpq", "tl-expected": "tl-expected"},
}
DEPS = ["boost", "libpq", "tl-expected"]
problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def version_tuple(v):
    """'1.81' -> (1, 81, 0); None when `v` is not a dotted number (a port version may carry
    a '#n' port revision, which does not count)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)*)(?:#\d+)?", v.strip())
    if not m:
        return None
    parts = [int(x) for x in m.group(1).split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


# --- CMake command syntax ---------------------------------------------------------------------
def cmake_commands(text):
    """[(name, [arguments])] of a CMake file, in order: comments removed, quoted arguments
    unquoted, nested parentheses kept inside one command. Raises ValueError on unbalanced
    parentheses or an unterminated string."""
    out, i, n = [], 0, len(text)
    ident = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
    while i < n:
        c = text[i]
        if c == "#":
            if text.startswith("#[[", i) or text.startswith("#[=", i):
                m = re.compile(r"#\[(=*)\[").match(text, i)
                end = text.find("]" + m.group(1) + "]", m.end())
                if end < 0:
                    raise ValueError("unterminated bracket comment")
                i = end + len(m.group(1)) + 2
            else:
                j = text.find("\n", i)
                i = n if j < 0 else j
            continue
        m = ident.match(text, i)
        if not m:
            i += 1
            continue
        j = m.end()
        while j < n and text[j] in " \t":
            j += 1
        if j >= n or text[j] != "(":
            i = m.end()
            continue
        args, depth, k, cur, quoted = [], 1, j + 1, "", False
        while True:
            if k >= n:
                raise ValueError(f"unbalanced parentheses in {m.group(0)}(")
            ch = text[k]
            if quoted:
                if ch == "\\" and k + 1 < n:
                    cur += text[k:k + 2]
                    k += 2
                    continue
                if ch == '"':
                    quoted = False
                    args.append(cur)
                    cur = ""
                else:
                    cur += ch
            elif ch == '"':
                quoted = True
            elif ch == "#":
                e = text.find("\n", k)
                k = n - 1 if e < 0 else e
            elif ch in " \t\r\n":
                if cur:
                    args.append(cur)
                    cur = ""
            elif ch == "(":
                depth += 1
                cur += ch
            elif ch == ")":
                depth -= 1
                if depth == 0:
                    if cur:
                        args.append(cur)
                    break
                cur += ch
            else:
                cur += ch
            k += 1
        out.append((m.group(0).lower(), args))
        i = k + 1
    return out


def cmake_file(root, rel):
    try:
        return cmake_commands(read(root, rel))
    except (OSError, ValueError) as e:
        problem(rel, f"cannot read: {e}")
        return []


def keyword_value(args, key):
    """The argument after `key` in a command's arguments, or None."""
    return args[args.index(key) + 1] if key in args and args.index(key) + 1 < len(args) else None


# --- CMakeLists.txt: the reference ------------------------------------------------------------
def reference(root):
    cmds = cmake_file(root, "CMakeLists.txt")
    ref = {"version": None, "mins": {}, "options": set(), "cmakedir": None, "defines": set()}
    for name, args in cmds:
        if name == "project" and args and args[0] == "pgcoro":
            ref["version"] = keyword_value(args, "VERSION")
        elif name == "find_package" and args:
            canon = NAMES["cmake"].get(args[0], f"unknown:{args[0]}")
            if canon is None:
                continue
            if canon.startswith("unknown:"):
                problem("CMakeLists.txt", f"find_package({args[0]}) is not a known dependency;"
                        " update tests/packaging/agreement.py and the recipes together")
                continue
            v = args[1] if len(args) > 1 and version_tuple(args[1]) else None
            if v is None:
                problem("CMakeLists.txt", f"find_package({args[0]}) states no minimum version")
            ref["mins"][canon] = v
        elif name == "option" and args:
            ref["options"].add(args[0])
        elif name == "set" and len(args) >= 3 and "CACHE" in args:
            ref["options"].add(args[0])
            if args[0] == "PGCORO_INSTALL_CMAKEDIR":
                # The header-only layout (the default): package files under share/.
                ref["cmakedir"] = (args[1].replace("${pgcoro_package_dir}", "share")
                                   .replace("${CMAKE_INSTALL_DATADIR}", "share"))
        elif name == "target_compile_definitions" and args and args[0] == "pgcoro":
            # What every consumer gets; PGCORO_SEPARATE_COMPILATION only with that option.
            ref["defines"].update(a for a in args[1:]
                                  if a not in ("INTERFACE", "PUBLIC", "PGCORO_SEPARATE_COMPILATION")
                                  and not a.startswith("${"))
            ref["separate_define"] = ref.get("separate_define") or (
                "PGCORO_SEPARATE_COMPILATION" in args)
    if not ref["version"] or not version_tuple(ref["version"]):
        problem("CMakeLists.txt", "no project(pgcoro VERSION x.y.z)")
    missing = [d for d in DEPS if d not in ref["mins"]]
    if missing:
        problem("CMakeLists.txt", f"no find_package for {missing}")
    if not ref["cmakedir"]:
        problem("CMakeLists.txt", "no PGCORO_INSTALL_CMAKEDIR cache variable")
    return ref


def check_min(where, dep, stated, ref):
    """`stated` (a version) must be the reference minimum of `dep`."""
    want = ref["mins"].get(dep)
    if want is None:
        return
    if stated is None:
        problem(where, f"{dep} has no minimum version; CMake requires {want}")
    elif version_tuple(stated) != version_tuple(want):
        problem(where, f"{dep} minimum is {stated}, CMake requires {want}")


def check_version_header(root, ref):
    text = read(root, "include/pgcoro/version.hpp")
    v = ref["version"] or "0.0.0"
    want = dict(zip(["MAJOR", "MINOR", "PATCH"], v.split(".")), STRING=f'"{v}"')
    for key, value in want.items():
        m = re.search(rf"#define PGCORO_VERSION_{key} (\S+)", text)
        if not m:
            problem("version.hpp", f"no PGCORO_VERSION_{key}")
        elif m.group(1) != value:
            problem("version.hpp", f"PGCORO_VERSION_{key} is {m.group(1)}, CMake says {value}")


def check_package_config(root, ref):
    where = "cmake/pgcoroConfig.cmake.in"
    seen = {}
    for name, args in cmake_file(root, where):
        if name == "find_dependency" and args:
            canon = NAMES["cmake"].get(args[0], f"unknown:{args[0]}")
            seen[args[0]] = True
            if canon and canon.startswith("unknown:"):
                problem(where, f"find_dependency({args[0]}) is not a dependency of pgcoro")
            elif canon:
                check_min(where, canon, args[1] if len(args) > 1 else None, ref)
    for cmake_name, canon in NAMES["cmake"].items():
        if cmake_name not in seen:
            problem(where, f"no find_dependency({cmake_name})")


# --- vcpkg --------------------------------------------------------------------------------------
def check_vcpkg_manifest(root, rel, ref, need_constraints):
    try:
        data = json.loads(read(root, rel))
    except (OSError, ValueError) as e:
        problem(rel, f"not valid JSON: {e}")
        return None
    if data.get("name") != "pgcoro" or data.get("version") != ref["version"]:
        problem(rel, f"{data.get('name')} {data.get('version')}, CMake says pgcoro "
                f"{ref['version']}")
    deps = {}
    for d in data.get("dependencies", []):
        name = d if isinstance(d, str) else d.get("name")
        canon = NAMES["vcpkg"].get(name, f"unknown:{name}")
        if canon is None:
            continue
        if canon.startswith("unknown:"):
            problem(rel, f"dependency '{name}' is not a vcpkg port pgcoro needs "
                    f"(expected {sorted(k for k, v in NAMES['vcpkg'].items() if v)})")
            continue
        deps[canon] = None if isinstance(d, str) else d.get("version>=")
    for dep in DEPS:
        if dep not in deps:
            problem(rel, f"no dependency for {dep}")
        elif need_constraints or deps[dep] is not None:
            check_min(rel, dep, deps[dep], ref)
    return data


def check_portfile(root, rel, ref, features, registry):
    cmds = cmake_file(root, rel)
    names = [c[0] for c in cmds]
    fixup = [a for c, a in cmds if c == "vcpkg_cmake_config_fixup"]
    if not fixup:
        problem(rel, "no vcpkg_cmake_config_fixup")
    # Where CMake installs the package config: where the portfile tells it, else the default.
    cmakedir = ref["cmakedir"]
    for c, args in cmds:
        for a in args if c == "vcpkg_cmake_configure" else ():
            m = re.fullmatch(r"-DPGCORO_INSTALL_CMAKEDIR(?::\w+)?=(.*)", a)
            if m:
                cmakedir = m.group(1)
    for args in fixup:
        if keyword_value(args, "CONFIG_PATH") != cmakedir:
            problem(rel, f"CONFIG_PATH {keyword_value(args, 'CONFIG_PATH')}, CMake installs "
                    f"the package config in {cmakedir}")
    for c, args in cmds:
        if c == "vcpkg_cmake_configure":
            for a in args:
                m = re.fullmatch(r"-D([A-Za-z0-9_]+)(?::\w+)?=.*", a)
                if m and m.group(1) not in ref["options"]:
                    problem(rel, f"-D{m.group(1)} is not an option of CMakeLists.txt")
        if c == "vcpkg_check_features":
            if "FEATURES" in args:
                rest = args[args.index("FEATURES") + 1:]
                pairs = dict(zip(rest[0::2], rest[1::2]))
                if set(pairs) != set(features):
                    problem(rel, f"features {sorted(pairs)}, vcpkg.json declares "
                            f"{sorted(features)}")
                for var in pairs.values():
                    if var not in ref["options"]:
                        problem(rel, f"feature option {var} is not an option of CMakeLists.txt")
        if c == "vcpkg_install_copyright":
            for f in args[args.index("FILE_LIST") + 1:] if "FILE_LIST" in args else []:
                path = f.replace("${SOURCE_PATH}/", "")
                if not os.path.isfile(os.path.join(root, path)):
                    problem(rel, f"copyright file {path} does not exist")
    if "vcpkg_install_copyright" not in names:
        problem(rel, "no vcpkg_install_copyright")
    if registry:
        gh = [a for c, a in cmds if c == "vcpkg_from_github"]
        if not gh:
            problem(rel, "a registry port gets its source with vcpkg_from_github")
        for args in gh:
            if keyword_value(args, "REF") != "v${VERSION}":
                problem(rel, f"REF {keyword_value(args, 'REF')}: the release tag is v${{VERSION}}")
            if keyword_value(args, "SHA512") is None:
                problem(rel, "vcpkg_from_github without SHA512")
    elif "vcpkg_from_github" in names:
        problem(rel, "the development overlay port builds the checkout, not a download")
    # Both ports do the same once SOURCE_PATH is known.
    return [(c, a) for c, a in cmds
            if c not in ("vcpkg_from_github", "get_filename_component", "set", "if", "endif")]


def normalized_manifest(data):
    """A port manifest without its free text, versions compared as numbers."""
    deps = []
    for d in data.get("dependencies", []):
        d = {"name": d} if isinstance(d, str) else dict(d)
        if "version>=" in d:
            d["version>="] = version_tuple(d["version>="])
        deps.append(sorted(d.items()))
    rest = {k: v for k, v in data.items() if k not in ("description", "dependencies",
                                                       "homepage", "$schema")}
    return rest, sorted(deps)


def check_vcpkg(root, ref):
    check_vcpkg_manifest(root, "vcpkg.json", ref, need_constraints=False)
    ports = {}
    for rel, registry in (("ports/pgcoro", False), ("packaging/vcpkg/ports/pgcoro", True)):
        data = check_vcpkg_manifest(root, f"{rel}/vcpkg.json", ref, need_constraints=True)
        features = sorted((data or {}).get("features", {}))
        ports[rel] = (check_portfile(root, f"{rel}/portfile.cmake", ref, features, registry),
                      data and normalized_manifest(data))
        if not os.path.isfile(os.path.join(root, rel, "usage")):
            problem(rel, "no usage file")
    (dev_cmds, dev_json), (reg_cmds, reg_json) = ports.values()
    if dev_cmds != reg_cmds:
        problem("ports", "the overlay and registry portfiles differ beyond where SOURCE_PATH "
                "comes from")
    if dev_json != reg_json:
        problem("ports", "the overlay and registry vcpkg.json differ in more than description")


# --- Conan --------------------------------------------------------------------------------------
def conan_range_min(ref_text):
    """Lowest version a Conan reference's version (exact or [range]) admits, and whether the
    range is well formed: '[>=1.81 <2]' -> (1, 81, 0)."""
    if not (ref_text.startswith("[") and ref_text.endswith("]")):
        return version_tuple(ref_text), version_tuple(ref_text) is not None
    low, high = None, None
    for alt in ref_text[1:-1].split("||"):
        conds = alt.replace(",", " ").split()
        a_low, a_high = (0, 0, 0), None
        for cond in conds:
            m = re.fullmatch(r"(>=|>|<=|<|~|\^|=)?(\d+(?:\.\d+)*)(-\w+)?", cond)
            if not m:
                return None, False
            op, v = m.group(1) or "=", version_tuple(m.group(2))
            if op in (">=", ">", "=", "~", "^"):
                a_low = max(a_low, v)
            if op in ("<", "<="):
                a_high = v if a_high is None else min(a_high, v)
        if a_high is not None and a_high <= a_low:
            return None, False
        low = a_low if low is None else min(low, a_low)
    return low, True


def check_conan(root, ref):
    rel = "conanfile.py"
    try:
        tree = ast.parse(read(root, rel), filename=rel)
    except (OSError, SyntaxError) as e:
        problem(rel, f"does not parse: {e}")
        return
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    if len(classes) != 1:
        problem(rel, "expected one recipe class")
        return
    cls = classes[0]
    attrs = {t.id: n.value for n in cls.body if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name)}
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}

    def const(name):
        try:
            return ast.literal_eval(attrs[name])
        except (KeyError, ValueError):
            return None

    if const("name") != "pgcoro":
        problem(rel, f"name {const('name')!r}")
    if const("version") != ref["version"]:
        problem(rel, f"version {const('version')!r}, CMake says {ref['version']}")
    for pattern in const("exports_sources") or ():
        if not any(fnmatch.fnmatch(os.path.relpath(os.path.join(d, f), root), pattern)
                   for d, _, fs in os.walk(root) for f in fs):
            problem(rel, f"exports_sources '{pattern}' matches no file")

    calls = [n for n in ast.walk(cls) if isinstance(n, ast.Call)]

    def call_name(c):
        return c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", None)

    requires = {}
    for c in calls:
        if call_name(c) == "requires" and c.args and isinstance(c.args[0], ast.Constant):
            name, _, version = str(c.args[0].value).partition("/")
            canon = NAMES["conan"].get(name, f"unknown:{name}")
            if canon.startswith("unknown:"):
                problem(rel, f"requires '{name}', not a Conan package pgcoro needs")
                continue
            requires[canon] = version
    for dep in DEPS:
        if dep not in requires:
            problem(rel, f"no requires for {dep}")
            continue
        low, ok = conan_range_min(requires[dep])
        want = version_tuple(ref["mins"].get(dep) or "0")
        if not ok:
            problem(rel, f"{dep}/{requires[dep]} is not a valid version or range")
        elif low < want:
            problem(rel, f"{dep}/{requires[dep]} admits versions below CMake's minimum "
                    f"{ref['mins'][dep]}")
        elif not requires[dep].startswith("["):
            pass  # an exact version at or above the minimum

    # package(): every copy() source must exist in the exported tree.
    def resolve(node):
        if isinstance(node, ast.Constant):
            return str(node.value)
        if isinstance(node, ast.Attribute) and node.attr == "source_folder":
            return ""
        if isinstance(node, ast.Attribute) and node.attr == "build_folder":
            return "<build>"  # what the build produces: nothing to check before it runs
        if isinstance(node, ast.Call) and call_name(node) == "join":
            parts = [resolve(a) for a in node.args]
            return None if None in parts else os.path.join(*[p for p in parts if p] or [""])
        return None

    package = methods.get("package")
    if package is None:
        problem(rel, "no package() method")
    else:
        for c in ast.walk(package):
            if isinstance(c, ast.Call) and call_name(c) == "copy" and len(c.args) >= 3:
                pattern, src = resolve(c.args[1]), resolve(c.args[2])
                if pattern is None or src is None:
                    problem(rel, "package(): a copy() whose source this check cannot read")
                    continue
                base = os.path.join(root, src)
                if src.startswith("<build>"):
                    continue
                if not os.path.isdir(base):
                    problem(rel, f"package() copies from '{src}', which does not exist")
                elif not any(fnmatch.fnmatch(f, pattern) for _, _, fs in os.walk(base)
                             for f in fs):
                    problem(rel, f"package() copies '{pattern}' from '{src}': no such file")

    # package_info(): the names CMake users and pkg-config users see.
    props = {}
    for c in calls:
        if call_name(c) == "set_property" and len(c.args) == 2 and all(
                isinstance(a, ast.Constant) for a in c.args):
            props[c.args[0].value] = c.args[1].value
    want = {"cmake_file_name": "pgcoro", "cmake_target_name": "pgcoro::pgcoro",
            "pkg_config_name": "pgcoro"}
    for key, value in want.items():
        if props.get(key) != value:
            problem(rel, f"package_info {key} is {props.get(key)!r}, expected {value!r}")
    defines = set()
    for n in ast.walk(cls):
        if isinstance(n, (ast.Assign, ast.AugAssign)):
            target = n.targets[0] if isinstance(n, ast.Assign) else n.target
            if isinstance(target, ast.Attribute) and target.attr == "defines":
                try:
                    defines.update(ast.literal_eval(n.value))
                except ValueError:
                    pass
    if ref.get("separate_define") and not any(
            isinstance(c.func, ast.Attribute) and c.func.attr == "append" and c.args
            and isinstance(c.args[0], ast.Constant)
            and c.args[0].value == "PGCORO_SEPARATE_COMPILATION" for c in calls):
        problem(rel, "package_info does not define PGCORO_SEPARATE_COMPILATION for the "
                "separate_compilation option, as CMake's option does")
    if not ref["defines"] <= defines:
        problem(rel, f"package_info defines {sorted(defines)}, CMake's pgcoro target defines "
                f"{sorted(ref['defines'])}")
    if not os.path.isfile(os.path.join(root, "test_package", "conanfile.py")):
        problem("test_package", "no test_package/conanfile.py")
    else:
        try:
            ast.parse(read(root, "test_package/conanfile.py"))
        except SyntaxError as e:
            problem("test_package/conanfile.py", f"does not parse: {e}")


def check_changelog(root, ref):
    if not re.search(rf"\n## \[?{re.escape(ref['version'] or '?')}\]?", read(root, "CHANGELOG.md")):
        problem("CHANGELOG.md", f"no '## {ref['version']}' entry")


def main(root):
    ref = reference(root)
    if ref["version"]:
        check_version_header(root, ref)
        check_package_config(root, ref)
        check_vcpkg(root, ref)
        check_conan(root, ref)
        check_changelog(root, ref)
    if problems:
        print("packaging metadata disagree:")
        for p in problems:
            print("  " + p)
        return 1
    mins = ", ".join(f"{d} >= {ref['mins'][d]}" for d in DEPS)
    print(f"pgcoro {ref['version']}: CMake, version.hpp, pgcoroConfig, vcpkg (root, overlay and "
          f"registry ports), Conan (recipe, test_package) and CHANGELOG agree on {mins}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
