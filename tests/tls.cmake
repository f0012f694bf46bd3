# TLS tests (included by tests/CMakeLists.txt): a separate executable against a second
# throwaway cluster with TLS and test certificates, which the `tls_cluster` fixture
# (scripts/test-cluster-tls.sh) starts and removes. Its tests swap the server certificate, so
# they hold their own resource lock. Without openssl the fixture writes no PGCORO_TLS_* lines
# and the tests skip themselves.
set(PGCORO_TLS_CLUSTER_DIR ${CMAKE_CURRENT_BINARY_DIR}/tls-cluster)

add_executable(pgcoro_tls_tests ${CMAKE_CURRENT_SOURCE_DIR}/tls/tls_test.cpp)
target_include_directories(pgcoro_tls_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(pgcoro_tls_tests PRIVATE pgcoro::pgcoro pgcoro_warnings GTest::gtest_main)
gtest_discover_tests(pgcoro_tls_tests TEST_PREFIX "tls."
    PROPERTIES LABELS "integration" FIXTURES_REQUIRED tls_cluster
               ENVIRONMENT "PGCORO_TEST_CLUSTER=${PGCORO_TLS_CLUSTER_DIR}"
               RESOURCE_LOCK pgcoro_tls_server TIMEOUT 120
    DISCOVERY_TIMEOUT 30)

add_test(NAME tls_cluster.start
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test-cluster-tls.sh start
                 ${PGCORO_TLS_CLUSTER_DIR})
set_tests_properties(tls_cluster.start PROPERTIES FIXTURES_SETUP tls_cluster
                     LABELS "integration" TIMEOUT 120)
add_test(NAME tls_cluster.stop
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test-cluster-tls.sh stop
                 ${PGCORO_TLS_CLUSTER_DIR})
set_tests_properties(tls_cluster.stop PROPERTIES FIXTURES_CLEANUP tls_cluster
                     LABELS "integration")
