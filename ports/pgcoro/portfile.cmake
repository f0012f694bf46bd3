# Development overlay port: installs the pgcoro checkout it lives in (not a release), for
# working on pgcoro and for the consumer tests (tests/packaging/vcpkg_manifest). Classic mode,
# from a directory without a vcpkg.json: vcpkg install pgcoro --overlay-ports=<pgcoro>/ports
# The registry form (vcpkg_from_github of a tagged release) is packaging/vcpkg/ports/pgcoro;
# the two differ only in where SOURCE_PATH comes from (ctest -L packaging checks).
if(NOT "separate-compilation" IN_LIST FEATURES)
    set(VCPKG_BUILD_TYPE release) # header-only: one configuration is enough
endif()
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

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
