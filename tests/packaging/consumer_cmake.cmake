# cmake -P: configures and builds tests/packaging/consumer against the pgcoro installed in
# PREFIX, through find_package(pgcoro CONFIG REQUIRED) alone.
#   -DSOURCE_DIR=<consumer> -DBINARY_DIR=<dir> -DPREFIX=<prefix> -DGENERATOR=<gen> -DCXX=<c++>
#   [-DLAUNCHER=<ccache>]
cmake_minimum_required(VERSION 3.20)
file(REMOVE_RECURSE ${BINARY_DIR})
set(launcher "")
if(LAUNCHER)
    set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BINARY_DIR} -G ${GENERATOR}
                        -DCMAKE_CXX_COMPILER=${CXX} ${launcher} -DCMAKE_PREFIX_PATH=${PREFIX}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer configure failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY_DIR} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer build failed")
endif()
