# Configuration tests beyond the unit tests (included by tests/CMakeLists.txt):
#  - compile-fail: an invalid constexpr pool_config must not compile, with a readable message;
#  - fuzz: a libFuzzer target (clang++, -fsanitize=fuzzer,address,undefined) over the URL and
#    env parsers, run for PGCORO_FUZZ_SECONDS (default 60) on a copy of the committed corpus.
set(PGCORO_CONFIG_INCLUDES ${PROJECT_SOURCE_DIR}/include ${PostgreSQL_INCLUDE_DIRS})
set(PGCORO_COMPILE_CHECK ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/check_compile.cmake)

function(pgcoro_compile_check name source expect regex)
    add_test(NAME config.compile.${name}
             COMMAND ${CMAKE_COMMAND} -DCXX=${CMAKE_CXX_COMPILER}
                     "-DINCLUDES=${PGCORO_CONFIG_INCLUDES}"
                     -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/${source}
                     -DEXPECT=${expect} "-DREGEX=${regex}" -P ${PGCORO_COMPILE_CHECK})
    set_tests_properties(config.compile.${name} PROPERTIES LABELS "unit;compile_fail")
endfunction()

pgcoro_compile_check(valid_control valid_pool_config.cpp pass "")
pgcoro_compile_check(invalid_static_assert invalid_pool_static_assert.cpp fail
                     "pool_config invalid: min_size must not exceed max_size")
pgcoro_compile_check(invalid_checked invalid_pool_checked.cpp fail
                     "pgcoro_config_error_validation_timeout_not_below_acquire_timeout")
pgcoro_compile_check(unsupported_param unsupported_param_type.cpp fail
                     "cannot be sent as a parameter. Supported: bool.*specialise pgcoro::value_traits")
pgcoro_compile_check(unsupported_field unsupported_field_type.cpp fail
                     "cannot be read from a field. Supported: bool.*specialise pgcoro::value_traits")

find_program(PGCORO_FUZZ_CXX NAMES clang++-14 clang++)
if(PGCORO_FUZZ_CXX)
    add_test(NAME config.fuzz
             COMMAND ${CMAKE_COMMAND} -DCXX=${PGCORO_FUZZ_CXX}
                     "-DINCLUDES=${PGCORO_CONFIG_INCLUDES}"
                     -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/config_fuzz.cpp
                     -DCORPUS=${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus
                     -DWORK=${CMAKE_CURRENT_BINARY_DIR}/config_fuzz
                     -P ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_fuzz.cmake)
    # Compile (~30 s) + the bounded run; raise TIMEOUT along with PGCORO_FUZZ_SECONDS.
    set_tests_properties(config.fuzz PROPERTIES LABELS "fuzz" TIMEOUT 900)
else()
    message(STATUS "pgcoro: clang++ not found, config.fuzz test disabled")
endif()
