# Overlay port for the pgcoro source tree it lives in (vcpkg install pgcoro
# --overlay-ports=<pgcoro>/ports). A registry port would use vcpkg_from_github with a REF and
# SHA512 instead of the local SOURCE_PATH below.
set(VCPKG_BUILD_TYPE release) # header-only: one configuration is enough
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        -DPGCORO_BUILD_TESTS=OFF
        -DPGCORO_BUILD_EXAMPLES=OFF
        -DPGCORO_BUILD_BENCHMARKS=OFF
        -DPGCORO_INSTALL=ON
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/pgcoro)
vcpkg_fixup_pkgconfig()

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
