# cmake -P: configures pgcoro with PGCORO_SEPARATE_COMPILATION=ON (tests, examples, benchmarks
# OFF), builds and installs it into WORK/prefix, checks the installed package, then builds this
# directory's consumer against it with find_package(pgcoro) alone.
#   -DSOURCE_DIR=<pgcoro> -DCONSUMER_DIR=<this dir> -DWORK=<dir> -DGENERATOR=<gen> -DCXX=<c++>
#   [-DLAUNCHER=<ccache>]
cmake_minimum_required(VERSION 3.20)
foreach(v SOURCE_DIR CONSUMER_DIR WORK GENERATOR CXX)
    if(NOT DEFINED ${v})
        message(FATAL_ERROR "build.cmake: -D${v}=... is required")
    endif()
endforeach()
set(build ${WORK}/pgcoro-build)
set(prefix ${WORK}/prefix)
set(consumer ${WORK}/consumer)
file(REMOVE_RECURSE ${build} ${prefix} ${consumer})
set(launcher "")
if(LAUNCHER)
    set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "failed (${rc}): ${ARGN}")
    endif()
endfunction()

run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${build} -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX}
    ${launcher} -DCMAKE_INSTALL_PREFIX=${prefix} -DPGCORO_SEPARATE_COMPILATION=ON
    -DPGCORO_BUILD_TESTS=OFF -DPGCORO_BUILD_EXAMPLES=OFF -DPGCORO_BUILD_BENCHMARKS=OFF)
run(${CMAKE_COMMAND} --build ${build})
run(${CMAKE_COMMAND} --install ${build})

# The static library, the implementation files and a pkg-config file that says how to use them.
file(GLOB_RECURSE libs ${prefix}/*/libpgcoro.a)
if(NOT libs)
    message(FATAL_ERROR "libpgcoro.a not installed")
endif()
file(GLOB ipps RELATIVE ${SOURCE_DIR}/include ${SOURCE_DIR}/include/pgcoro/impl/*.ipp)
foreach(f ${ipps} pgcoro/src.hpp)
    if(NOT EXISTS ${prefix}/include/${f})
        message(FATAL_ERROR "not installed: include/${f}")
    endif()
endforeach()
file(GLOB_RECURSE pcs ${prefix}/*/pgcoro.pc)
if(NOT pcs)
    message(FATAL_ERROR "pgcoro.pc not installed")
endif()
list(GET pcs 0 pc)
file(READ ${pc} pc_text)
if(NOT pc_text MATCHES "Cflags:[^\n]*-DPGCORO_SEPARATE_COMPILATION"
   OR NOT pc_text MATCHES "Libs:[^\n]*-lpgcoro")
    message(FATAL_ERROR "${pc}: no -DPGCORO_SEPARATE_COMPILATION or -lpgcoro")
endif()

run(${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${consumer} -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX} ${launcher} -DCMAKE_PREFIX_PATH=${prefix})
run(${CMAKE_COMMAND} --build ${consumer})
message(STATUS "separate-compilation consumer built in ${consumer}")
