# Registry port for pgcoro (the form microsoft/vcpkg or a custom registry takes): builds the
# tagged release v${VERSION} from GitHub. For a local checkout use the overlay port in
# <pgcoro>/ports/pgcoro instead (development only). At release time, tag v${VERSION}, set
# SHA512 to the value `vcpkg install pgcoro --overlay-ports=packaging/vcpkg/ports` reports for
# the tag's archive (vcpkg prints the expected hash when it is 0), and add the version to the
# registry's versions database (`vcpkg x-add-version pgcoro`).
if(NOT "separate-compilation" IN_LIST FEATURES)
    set(VCPKG_BUILD_TYPE release) # header-only: one configuration is enough
endif()

vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO pgcoro/pgcoro
    REF "v${VERSION}"
    SHA512 0
    HEAD_REF main
)

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
    FEATURES
        separate-compilation PGCORO_SEPARATE_COMPILATION
)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        -DPGCORO_BUILD_TESTS=OFF
        -DPGCORO_BUILD_EXAMPLES=OFF
        -DPGCORO_BUILD_BENCHMARKS=OFF
        -DPGCORO_INSTALL=ON
        -DPGCORO_INSTALL_CMAKEDIR=share/cmake/pgcoro
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/pgcoro)
vcpkg_fixup_pkgconfig()

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
