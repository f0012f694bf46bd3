# Observability tests beyond the unit tests (included by tests/CMakeLists.txt):
#  - promtool: a rendered Prometheus exposition must pass `promtool check metrics` (format and
#    naming lint). Needs the `prometheus` Debian package; without promtool the test is not added.
add_executable(pgcoro_prometheus_sample
               ${CMAKE_CURRENT_SOURCE_DIR}/observability/prometheus_sample.cpp)
target_link_libraries(pgcoro_prometheus_sample PRIVATE pgcoro::pgcoro pgcoro_warnings)

find_program(PGCORO_PROMTOOL promtool)
if(PGCORO_PROMTOOL)
    foreach(variant plain labelled)
        if(variant STREQUAL "labelled")
            set(pool_arg "main")
        else()
            set(pool_arg "")
        endif()
        add_test(NAME observability.promtool.${variant}
                 COMMAND bash -c "set -o pipefail; \"$0\" \"$1\" | \"$2\" check metrics"
                         $<TARGET_FILE:pgcoro_prometheus_sample> "${pool_arg}" ${PGCORO_PROMTOOL})
        set_tests_properties(observability.promtool.${variant}
                             PROPERTIES LABELS "unit;observability")
    endforeach()
else()
    message(STATUS "pgcoro: promtool not found (apt-get install prometheus), "
                   "observability.promtool test disabled")
endif()
