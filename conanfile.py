# Conan 2 recipe for pgcoro, a header-only library: `conan create .` packages the headers;
# consumers get pgcoro::pgcoro through CMakeDeps (find_package(pgcoro CONFIG REQUIRED)) or
# the `pgcoro` module through PkgConfigDeps. Version and dependencies must agree with
# CMakeLists.txt and vcpkg.json (ctest -R packaging.agreement checks).
import os

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class PgcoroConan(ConanFile):
    name = "pgcoro"
    version = "0.1.0"
    description = "C++20 coroutine PostgreSQL connection pool for Boost.Asio"
    license = "BSL-1.0"
    topics = ("postgresql", "libpq", "asio", "coroutines", "connection-pool", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    exports_sources = "include/*", "LICENSE"
    no_copy_source = True
    # Boost is used header-only (Asio); nothing of it is compiled or linked.
    default_options = {"boost/*:header_only": True}

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # pgcoro's public headers include all three, so their headers are transitive.
        self.requires("boost/1.81.0", transitive_headers=True)
        self.requires("libpq/[>=15.0 <16]", transitive_headers=True, transitive_libs=True)
        self.requires("tl-expected/1.0.0", transitive_headers=True)

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"),
             os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.set_property("cmake_file_name", "pgcoro")
        self.cpp_info.set_property("cmake_target_name", "pgcoro::pgcoro")
        self.cpp_info.set_property("pkg_config_name", "pgcoro")
        self.cpp_info.defines = ["BOOST_ASIO_NO_DEPRECATED"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
