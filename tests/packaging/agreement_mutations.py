#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Mutation test of the packaging agreement check (tests/packaging/agreement.py): each mutation
below breaks one recipe the way a real mistake would, in a copy of the tree, and the checker
must fail on it (and name the file); the valid variants must pass.

    agreement_mutations.py <pgcoro source dir>"""
import os
import shutil
import subprocess
import sys
import tempfile

# (file, text to replace, replacement, what the mistake is): the checker must fail.
MUTATIONS = [
    ("ports/pgcoro/vcpkg.json", '"boost-asio"', '"boost-asioo"', "a typo in a vcpkg port name"),
    ("packaging/vcpkg/ports/pgcoro/vcpkg.json", '"name": "libpq"', '"name": "postgresql"',
     "postgresql (the server port) for libpq"),
    ("vcpkg.json", '"libpq"', '"postgresql"', "postgresql for libpq in the root manifest"),
    ("conanfile.py", "def package(self):", "def package(self)", "a syntax error in the recipe"),
    ("conanfile.py", 'os.path.join(self.source_folder, "include"),\n             os.path.join(self.package_folder, "include"))\n        copy(self, "*.ipp"',
     'os.path.join(self.source_folder, "includes"),\n             os.path.join(self.package_folder, "include"))\n        copy(self, "*.ipp"',
     "package() copying from a missing folder"),
    ("ports/pgcoro/portfile.cmake", "CONFIG_PATH share/cmake/pgcoro",
     "CONFIG_PATH lib/cmake/pgcoro", "a wrong CONFIG_PATH in the overlay port"),
    ("packaging/vcpkg/ports/pgcoro/portfile.cmake", "CONFIG_PATH share/cmake/pgcoro",
     "CONFIG_PATH share/pgcoro", "a wrong CONFIG_PATH in the registry port"),
    ("conanfile.py", 'version = "0.1.0"', 'version = "0.1.1"', "the recipe's version"),
    ("packaging/vcpkg/ports/pgcoro/vcpkg.json", '"version>=": "1.81.0"',
     '"version>=": "1.80.0"', "a Boost minimum below CMake's"),
    ("conanfile.py", '"boost/[>=1.81.0 <2]"', '"boost/[>=1.79 <2]"',
     "a Boost range admitting versions below CMake's minimum"),
    ("conanfile.py", '"boost/[>=1.81.0 <2]"', '"boost/[>=1.81 <1.80]"', "an empty range"),
    ("conanfile.py", '"tl-expected/[>=1.0.0 <2]"', '"expected/[>=1.0.0 <2]"',
     "a wrong Conan package name"),
    ("packaging/vcpkg/ports/pgcoro/portfile.cmake", 'REF "v${VERSION}"', "REF main",
     "a registry port building a branch, not the release tag"),
    ("ports/pgcoro/portfile.cmake", "-DPGCORO_BUILD_TESTS=OFF", "-DPGCORO_BUILD_TEST=OFF",
     "a portfile option CMake does not have"),
    ("cmake/pgcoroConfig.cmake.in", "find_dependency(tl-expected 1.0)\n", "",
     "the package config forgetting a dependency"),
    ("cmake/pgcoroConfig.cmake.in", "find_dependency(Boost 1.81)", "find_dependency(Boost)",
     "the package config dropping Boost's minimum"),
    ("conanfile.py", '"cmake_target_name", "pgcoro::pgcoro"', '"cmake_target_name", "pgcoro"',
     "a wrong CMake target name for Conan users"),
    ("conanfile.py", 'self.cpp_info.defines.append("PGCORO_SEPARATE_COMPILATION")', "pass",
     "the Conan option not passing the separate-compilation define"),
    ("ports/pgcoro/portfile.cmake", "-DPGCORO_INSTALL_CMAKEDIR=share/cmake/pgcoro",
     "-DPGCORO_INSTALL_CMAKEDIR=lib/cmake/pgcoro", "the config installed where CONFIG_PATH does not look"),
    ("include/pgcoro/version.hpp", "#define PGCORO_VERSION_MINOR 1",
     "#define PGCORO_VERSION_MINOR 2", "version.hpp out of step"),
    ("ports/pgcoro/vcpkg.json", '"version": "0.1.0"', '"version": "0.1.0",,',
     "invalid JSON in a port manifest"),
]
# (file, text, replacement, why it is valid): the checker must pass.
VALID = [
    ("conanfile.py", '"boost/[>=1.81.0 <2]"', '"boost/[>=1.81 <2]"', "a Boost range"),
    ("conanfile.py", '"boost/[>=1.81.0 <2]"', '"boost/1.83.0"', "an exact newer Boost"),
    ("packaging/vcpkg/ports/pgcoro/vcpkg.json", '"version>=": "1.81.0"', '"version>=": "1.81"',
     "the same minimum written shorter"),
]
COPY = ["CMakeLists.txt", "cmake", "include", "src", "vcpkg.json", "ports", "packaging",
        "conanfile.py", "test_package", "CHANGELOG.md", "LICENSE"]


def run_checker(checker, tree):
    p = subprocess.run([sys.executable, checker, tree], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def main(src):
    checker = os.path.join(src, "tests", "packaging", "agreement.py")
    failures = []
    with tempfile.TemporaryDirectory(prefix="pgcoro-agreement-") as tmp:
        pristine = os.path.join(tmp, "pristine")
        os.mkdir(pristine)
        for item in COPY:
            s = os.path.join(src, item)
            if os.path.isdir(s):
                shutil.copytree(s, os.path.join(pristine, item))
            elif os.path.exists(s):
                shutil.copy2(s, os.path.join(pristine, item))
        rc, out = run_checker(checker, pristine)
        if rc != 0:
            print(f"FAIL: the unmodified tree does not pass:\n{out}")
            return 1
        for expect_fail, cases in ((True, MUTATIONS), (False, VALID)):
            for rel, old, new, why in cases:
                tree = os.path.join(tmp, "case")
                shutil.rmtree(tree, ignore_errors=True)
                shutil.copytree(pristine, tree)
                path = os.path.join(tree, rel)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                if old not in text:
                    failures.append(f"{why}: '{old}' no longer occurs in {rel}; update the test")
                    continue
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text.replace(old, new, 1))
                rc, out = run_checker(checker, tree)
                named = rel.split("/")[-1] in out or rel in out
                if expect_fail and rc == 0:
                    failures.append(f"{why} ({rel}): the checker passed")
                elif expect_fail and not named:
                    failures.append(f"{why}: the checker failed without naming {rel}:\n{out}")
                elif not expect_fail and rc != 0:
                    failures.append(f"{why} ({rel}): the checker failed:\n{out}")
                else:
                    verdict = "caught" if expect_fail else "accepted"
                    print(f"ok  {verdict:8}  {why}")
    for f in failures:
        print("FAIL: " + f)
    print(f"{len(MUTATIONS)} mutations, {len(VALID)} valid variants, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
