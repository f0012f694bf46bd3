# Replica tests (included by tests/CMakeLists.txt): a primary with two streaming replicas on
# loopback, started by the `replica_cluster` fixture (scripts/test-replica-cluster.sh; about
# 4 s), for target_session_attrs, read routing, lag and read-your-writes; the failover test
# starts (and destroys) a primary + synchronous replica of its own. Own executable, so these
# build and run without the rest of the suite: `ctest -L replica`.
set(PGCORO_REPLICA_STATE ${CMAKE_CURRENT_BINARY_DIR}/replica-cluster)

file(GLOB PGCORO_REPLICA_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/replica/*_test.cpp)
add_executable(pgcoro_replica_tests ${PGCORO_REPLICA_SOURCES})
target_include_directories(pgcoro_replica_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(pgcoro_replica_tests PRIVATE
    PGCORO_REPLICA_STATE_DIR="${PGCORO_REPLICA_STATE}"
    PGCORO_REPLICA_SCRIPT="${PROJECT_SOURCE_DIR}/scripts/test-replica-cluster.sh")
target_link_libraries(pgcoro_replica_tests PRIVATE pgcoro::pgcoro pgcoro_warnings
                      GTest::gtest_main)
gtest_discover_tests(pgcoro_replica_tests TEST_PREFIX "replica."
    PROPERTIES LABELS "replica" FIXTURES_REQUIRED replica_cluster
               RESOURCE_LOCK pg_cluster_server RUN_SERIAL TRUE TIMEOUT 120
    DISCOVERY_TIMEOUT 30)

add_test(NAME replica.start
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test-replica-cluster.sh start
                 ${PGCORO_REPLICA_STATE} 2)
set_tests_properties(replica.start PROPERTIES FIXTURES_SETUP replica_cluster LABELS "replica")
add_test(NAME replica.stop
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test-replica-cluster.sh stop
                 ${PGCORO_REPLICA_STATE})
set_tests_properties(replica.stop PROPERTIES FIXTURES_CLEANUP replica_cluster LABELS "replica")

# examples/08_read_replicas against the replica topology (the examples' own test,
# example.08_read_replicas, runs it against the single test cluster: reads fall back there).
if(PGCORO_BUILD_EXAMPLES) # examples/ is added after tests/: no TARGET check here
    add_test(NAME replica.example_08
             COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/test-replica-cluster.sh run
                     ${PGCORO_REPLICA_STATE} $<TARGET_FILE:example_08_read_replicas>)
    set_tests_properties(replica.example_08 PROPERTIES LABELS "replica;example"
                         FIXTURES_REQUIRED replica_cluster RESOURCE_LOCK pg_cluster_server
                         TIMEOUT 60)
endif()
