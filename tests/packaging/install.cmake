# cmake -P: a fresh configure of pgcoro with tests, examples and benchmarks OFF, installed into
# WORK/prefix, then a check of the installed layout.
#   -DSOURCE_DIR=<pgcoro> -DWORK=<dir> -DGENERATOR=<gen> -DCXX=<compiler>
cmake_minimum_required(VERSION 3.20)
foreach(v SOURCE_DIR WORK GENERATOR CXX)
    if(NOT DEFINED ${v})
        message(FATAL_ERROR "install.cmake: -D${v}=... is required")
    endif()
endforeach()
set(build ${WORK}/build)
set(prefix ${WORK}/prefix)
file(REMOVE_RECURSE ${build} ${prefix})

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "failed (${rc}): ${ARGN}")
    endif()
endfunction()

run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${build} -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX}
    -DCMAKE_INSTALL_PREFIX=${prefix} -DPGCORO_BUILD_TESTS=OFF -DPGCORO_BUILD_EXAMPLES=OFF
    -DPGCORO_BUILD_BENCHMARKS=OFF)
run(${CMAKE_COMMAND} --build ${build})
run(${CMAKE_COMMAND} --install ${build})

# Every header of the source tree is installed, public and detail.
file(GLOB_RECURSE headers RELATIVE ${SOURCE_DIR}/include ${SOURCE_DIR}/include/*.hpp)
foreach(h ${headers})
    if(NOT EXISTS ${prefix}/include/${h})
        message(FATAL_ERROR "not installed: include/${h}")
    endif()
    # Each header says its license on its first line (a file copied out of the tree keeps it).
    file(STRINGS ${prefix}/include/${h} first LIMIT_COUNT 1)
    if(NOT first STREQUAL "// SPDX-License-Identifier: BSL-1.0")
        message(FATAL_ERROR "include/${h}: no SPDX-License-Identifier line first")
    endif()
endforeach()
foreach(f share/cmake/pgcoro/pgcoroConfig.cmake share/cmake/pgcoro/pgcoroConfigVersion.cmake
          share/cmake/pgcoro/pgcoroTargets.cmake share/pkgconfig/pgcoro.pc
          share/licenses/pgcoro/LICENSE)
    if(NOT EXISTS ${prefix}/${f})
        message(FATAL_ERROR "not installed: ${f}")
    endif()
endforeach()

# ARCH_INDEPENDENT: the version file must not reject a consumer with another pointer size.
file(READ ${prefix}/share/cmake/pgcoro/pgcoroConfigVersion.cmake version_file)
if(NOT version_file MATCHES "no architecture check[^\n]*\nif\\(\"TRUE\"\\)")
    message(FATAL_ERROR "pgcoroConfigVersion.cmake is not ARCH_INDEPENDENT")
endif()
# A header-only package installs nothing architecture-specific.
if(EXISTS ${prefix}/lib OR EXISTS ${prefix}/lib64 OR EXISTS ${prefix}/bin)
    message(FATAL_ERROR "a header-only install created lib/ or bin/")
endif()
message(STATUS "pgcoro installed into ${prefix}")
