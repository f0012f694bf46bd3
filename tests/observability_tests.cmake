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
    # The example HTTP service, checked from outside: health JSON, promtool on /metrics, and
    # 503 -> 200 across a database stop and start.
    if(PGCORO_BUILD_EXAMPLES)
        add_test(NAME observability.http_service
                 COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/observability/http_service_test.sh
                         ${PGCORO_CLUSTER_DIR} $<TARGET_FILE:example_04_http_service>
                         ${PGCORO_PROMTOOL})
        set_tests_properties(observability.http_service PROPERTIES
                             LABELS "integration;observability" TIMEOUT 180
                             FIXTURES_REQUIRED pg_cluster RESOURCE_LOCK pg_cluster_server)
    endif()
else()
    message(STATUS "pgcoro: promtool not found (apt-get install prometheus), "
                   "observability.promtool test disabled")
endif()
