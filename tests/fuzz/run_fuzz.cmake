# Builds the config fuzzer with clang++ and runs it on a copy of the committed corpus for
# $ENV{PGCORO_FUZZ_SECONDS} seconds (default 60). Fails on any crash, leak or UB report.
#   cmake -DCXX=clang++-14 -DINCLUDES="..." -DSOURCE=... -DCORPUS=... -DWORK=... -P run_fuzz.cmake
set(seconds 60)
if(DEFINED ENV{PGCORO_FUZZ_SECONDS})
    set(seconds $ENV{PGCORO_FUZZ_SECONDS})
endif()
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus)
file(GLOB_RECURSE seeds ${CORPUS}/*)
foreach(seed ${seeds})
    file(RELATIVE_PATH rel ${CORPUS} ${seed})
    string(REPLACE "/" "_" flat "${rel}")
    configure_file(${seed} ${WORK}/corpus/${flat} COPYONLY)
endforeach()

set(args -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
foreach(dir ${INCLUDES})
    list(APPEND args -I${dir})
endforeach()
execute_process(COMMAND ${CXX} ${args} ${SOURCE} -lpq -o ${WORK}/config_fuzz
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "building the fuzzer failed:\n${err}")
endif()
execute_process(COMMAND ${WORK}/config_fuzz -max_total_time=${seconds} -max_len=4096
                        -print_final_stats=1 ${WORK}/corpus
                WORKING_DIRECTORY ${WORK}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
    string(LENGTH "${err}" len)
    if(len GREATER 6000)
        math(EXPR start "${len} - 6000")
        string(SUBSTRING "${err}" ${start} 6000 err)
    endif()
    message(FATAL_ERROR "fuzzer found a problem (rc ${rc}); reproducer in ${WORK}:\n...${err}")
endif()
string(REGEX MATCH "stat::number_of_executed_units: *[0-9]+" runs "${err}")
message(STATUS "config fuzzer ran ${seconds}s without a crash (${runs})")
