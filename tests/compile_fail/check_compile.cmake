# Compiles one TU and checks the outcome. Run as:
#   cmake -DCXX=... -DINCLUDES="a;b" -DSOURCE=... -DEXPECT=pass|fail [-DREGEX=...] -P check_compile.cmake
# EXPECT=fail: the compiler must fail AND its output must match REGEX (the readable message).
set(args -std=c++20 -fsyntax-only)
foreach(dir ${INCLUDES})
    list(APPEND args -I${dir})
endforeach()
execute_process(COMMAND ${CXX} ${args} ${SOURCE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(EXPECT STREQUAL "pass")
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "expected ${SOURCE} to compile, it failed:\n${err}")
    endif()
    message(STATUS "compiled as expected: ${SOURCE}")
    return()
endif()
if(rc EQUAL 0)
    message(FATAL_ERROR "expected ${SOURCE} to fail to compile, it compiled")
endif()
if(NOT "${out}${err}" MATCHES "${REGEX}")
    message(FATAL_ERROR "${SOURCE} failed to compile, but without the message /${REGEX}/:\n${err}")
endif()
message(STATUS "failed to compile as expected, with /${REGEX}/")
