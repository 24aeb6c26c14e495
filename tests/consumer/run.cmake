# Installs the project into a scratch prefix, then configures, builds and runs tests/consumer
# against it with find_package(facecnn).
file(REMOVE_RECURSE ${WORK})
foreach(step
    "${CMAKE_COMMAND};-S;${SOURCE};-B;${WORK}/build;-G;${GENERATOR};-DFACECNN_BUILD_TESTS=OFF;-DFACECNN_BUILD_APPS=OFF;-DFACECNN_BUILD_BENCH=OFF;-DCMAKE_INSTALL_PREFIX=${WORK}/prefix"
    "${CMAKE_COMMAND};--install;${WORK}/build"
    "${CMAKE_COMMAND};-S;${SOURCE}/tests/consumer;-B;${WORK}/consumer;-G;${GENERATOR};-DCMAKE_PREFIX_PATH=${WORK}/prefix;-DCMAKE_BUILD_TYPE=Release"
    "${CMAKE_COMMAND};--build;${WORK}/consumer"
    "${WORK}/consumer/consumer")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer step failed (${rc}): ${step}\n${out}\n${err}")
  endif()
endforeach()
message(STATUS "${out}")
