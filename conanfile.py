# SPDX-License-Identifier: BSL-1.0
# Conan 2 recipe for pgcoro. Header-only by default: `conan create . -s compiler.cppstd=20`
# packages the headers (one package for every configuration); with
# `-o pgcoro/*:separate_compilation=True` it builds pgcoro's pool, connection and engine once
# into a static library (PGCORO_SEPARATE_COMPILATION). Consumers get pgcoro::pgcoro through
# CMakeDeps (find_package(pgcoro CONFIG REQUIRED)) or the `pgcoro` module through PkgConfigDeps.
# Version, dependencies and their minimums must agree with CMakeLists.txt and the vcpkg ports
# (ctest -R packaging.agreement checks; tests/packaging/agreement.py).
import os

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class PgcoroConan(ConanFile):
    name = "pgcoro"
    version = "0.1.0"
    description = "C++20 coroutine PostgreSQL connection pool for Boost.Asio"
    license = "BSL-1.0"
    url = "https://github.com/pgcoro/pgcoro"
    topics = ("postgresql", "libpq", "asio", "coroutines", "connection-pool", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"separate_compilation": [True, False], "fPIC": [True, False]}
    # Boost is used header-only (Asio); nothing of it is compiled or linked.
    default_options = {"separate_compilation": False, "fPIC": True,
                       "boost/*:header_only": True}
    exports_sources = "include/*", "src/*", "cmake/*", "CMakeLists.txt", "LICENSE"

    def configure(self):
        if self.options.separate_compilation:
            self.package_type = "static-library"
        else:
            self.options.rm_safe("fPIC")

    def layout(self):
        if self.options.separate_compilation:
            cmake_layout(self, src_folder=".")
        else:
            basic_layout(self, src_folder=".")

    def requirements(self):
        # pgcoro's public headers include all three, so their headers are transitive. The
        # minimums are CMake's: Boost 1.81 (Asio's awaitable API used), libpq 14 (pipeline
        # mode), tl-expected 1.0. Ranges, so another Boost in the graph does not conflict.
        self.requires("boost/[>=1.81.0 <2]", transitive_headers=True)
        self.requires("libpq/[>=14.0 <18]", transitive_headers=True, transitive_libs=True)
        self.requires("tl-expected/[>=1.0.0 <2]", transitive_headers=True)

    def package_id(self):
        if not self.info.options.separate_compilation:
            self.info.clear()

    def validate(self):
        # C++20 coroutines: a gnu17 default profile needs -s compiler.cppstd=20 (or 23, ...).
        check_min_cppstd(self, 20)

    def generate(self):
        if self.options.separate_compilation:
            tc = CMakeToolchain(self)
            tc.cache_variables["PGCORO_SEPARATE_COMPILATION"] = True
            tc.cache_variables["PGCORO_BUILD_TESTS"] = False
            tc.cache_variables["PGCORO_BUILD_EXAMPLES"] = False
            tc.cache_variables["PGCORO_BUILD_BENCHMARKS"] = False
            tc.generate()
            CMakeDeps(self).generate()

    def build(self):
        if self.options.separate_compilation:
            cmake = CMake(self)
            cmake.configure()
            cmake.build()

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"),
             os.path.join(self.package_folder, "include"))
        copy(self, "*.ipp", os.path.join(self.source_folder, "include"),
             os.path.join(self.package_folder, "include"))
        if self.options.separate_compilation:
            copy(self, "*.a", self.build_folder, os.path.join(self.package_folder, "lib"),
                 keep_path=False)

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "pgcoro")
        self.cpp_info.set_property("cmake_target_name", "pgcoro::pgcoro")
        self.cpp_info.set_property("pkg_config_name", "pgcoro")
        self.cpp_info.defines = ["BOOST_ASIO_NO_DEPRECATED"]
        if self.options.separate_compilation:
            self.cpp_info.libs = ["pgcoro"]
            self.cpp_info.defines.append("PGCORO_SEPARATE_COMPILATION")
        else:
            self.cpp_info.bindirs = []
            self.cpp_info.libdirs = []
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
