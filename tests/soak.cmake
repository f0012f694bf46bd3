# The soak program (tests/soak/soak.cpp): long mixed load with injected faults. Not a test -
# ctest never runs it - and not built by default; scripts/soak.sh builds and runs it.
add_executable(pgcoro_soak EXCLUDE_FROM_ALL ${CMAKE_CURRENT_SOURCE_DIR}/soak/soak.cpp)
target_include_directories(pgcoro_soak PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(pgcoro_soak PRIVATE pgcoro::pgcoro pgcoro_warnings GTest::gtest)
