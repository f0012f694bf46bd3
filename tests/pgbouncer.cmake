# pgbouncer tests (included by tests/CMakeLists.txt): pgcoro through a real pgbouncer 1.18 in
# transaction pooling mode with at most 5 server connections, started by the `pgbouncer`
# fixture (scripts/test-pgbouncer.sh) in front of the `pg_cluster` test cluster. A separate
# executable, so that only these tests need the pgbouncer fixture. Without pgbouncer installed
# the fixture writes no env file and the tests skip themselves.
set(PGCORO_PGBOUNCER_STATE ${CMAKE_CURRENT_BINARY_DIR}/pgbouncer)

add_executable(pgcoro_pgbouncer_tests ${CMAKE_CURRENT_SOURCE_DIR}/pgbouncer/pgbouncer_test.cpp)
target_include_directories(pgcoro_pgbouncer_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(pgcoro_pgbouncer_tests
                           PRIVATE PGCORO_PGBOUNCER_STATE_DIR="${PGCORO_PGBOUNCER_STATE}")
target_link_libraries(pgcoro_pgbouncer_tests PRIVATE pgcoro::pgcoro pgcoro_warnings
                      GTest::gtest_main)
# gtest_discover_tests flattens list-valued PROPERTIES, so the tests require only `pgbouncer`;
# its setup and cleanup tests require `pg_cluster`, which keeps the cluster up around them.
gtest_discover_tests(pgcoro_pgbouncer_tests TEST_PREFIX "pgbouncer."
    PROPERTIES LABELS "integration" FIXTURES_REQUIRED pgbouncer
               ENVIRONMENT "PGCORO_TEST_CLUSTER=${PGCORO_CLUSTER_DIR}"
               RESOURCE_LOCK pg_cluster_server TIMEOUT 120
    DISCOVERY_TIMEOUT 30)

add_test(NAME pgbouncer.start
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test-pgbouncer.sh start
                 ${PGCORO_PGBOUNCER_STATE} ${PGCORO_CLUSTER_DIR})
set_tests_properties(pgbouncer.start PROPERTIES FIXTURES_SETUP pgbouncer
                     FIXTURES_REQUIRED pg_cluster LABELS "integration")
add_test(NAME pgbouncer.stop
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test-pgbouncer.sh stop ${PGCORO_PGBOUNCER_STATE})
set_tests_properties(pgbouncer.stop PROPERTIES FIXTURES_CLEANUP pgbouncer
                     FIXTURES_REQUIRED pg_cluster LABELS "integration")
