# Separate compilation (PGCORO_SEPARATE_COMPILATION=ON; included by tests/CMakeLists.txt; label
# "packaging"):
#  - packaging.separate.build: pgcoro configured with the option ON, built and installed into a
#    temporary prefix (static library, .ipp files, pkg-config flags checked), then
#    tests/packaging/separate (3 TUs linked together: no duplicate definitions) built against it;
#  - packaging.separate.symbols: no consumer object defines pgcoro's implementation (engine,
#    pool core, connection's out-of-line members), while libpgcoro.a does;
#  - packaging.separate.run: the consumer (pool, query, query_one/opt, runtime params,
#    prepare/execute, stream, COPY) against the test cluster;
#  - packaging.headers_separate: every public header on its own in separate mode, under the
#    strict warnings of pgcoro_header_check (target pgcoro_header_check_separate, not in ALL).
set(PGCORO_SEPARATE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/packaging/separate)
set(PGCORO_SEPARATE_WORK ${CMAKE_BINARY_DIR}/packaging/separate)

add_test(NAME packaging.separate.build
         COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                 -DCONSUMER_DIR=${PGCORO_SEPARATE_DIR} -DWORK=${PGCORO_SEPARATE_WORK}
                 "-DGENERATOR=${CMAKE_GENERATOR}" -DCXX=${CMAKE_CXX_COMPILER}
                 "-DLAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER}"
                 -P ${PGCORO_SEPARATE_DIR}/build.cmake)
set_tests_properties(packaging.separate.build PROPERTIES LABELS "packaging" TIMEOUT 600
                     FIXTURES_SETUP pgcoro_separate_consumer)

add_test(NAME packaging.separate.symbols
         COMMAND bash ${PGCORO_SEPARATE_DIR}/check_symbols.sh ${PGCORO_SEPARATE_WORK}/consumer
                 ${PGCORO_SEPARATE_WORK}/prefix)
set_tests_properties(packaging.separate.symbols PROPERTIES LABELS "packaging" TIMEOUT 60
                     FIXTURES_REQUIRED pgcoro_separate_consumer)

add_test(NAME packaging.separate.run
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/with-test-env.sh ${PGCORO_CLUSTER_DIR}
                 ${PGCORO_SEPARATE_WORK}/consumer/app)
set_tests_properties(packaging.separate.run PROPERTIES LABELS "packaging" TIMEOUT 60
                     FIXTURES_REQUIRED "pg_cluster;pgcoro_separate_consumer"
                     RESOURCE_LOCK pg_cluster_server)

# The header self-containment TUs of tests/packaging.cmake, compiled in separate mode.
if(PGCORO_HEADER_CHECK_SOURCES)
    add_library(pgcoro_header_check_separate OBJECT EXCLUDE_FROM_ALL
                ${PGCORO_HEADER_CHECK_SOURCES})
    target_link_libraries(pgcoro_header_check_separate PRIVATE pgcoro::pgcoro pgcoro_warnings)
    target_compile_definitions(pgcoro_header_check_separate PRIVATE PGCORO_SEPARATE_COMPILATION)
    target_compile_options(pgcoro_header_check_separate PRIVATE -Wshadow -Wconversion
                           -Wsign-conversion)
    add_test(NAME packaging.headers_separate
             COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR}
                     --target pgcoro_header_check_separate)
    set_tests_properties(packaging.headers_separate PROPERTIES LABELS "packaging" TIMEOUT 600)
endif()
