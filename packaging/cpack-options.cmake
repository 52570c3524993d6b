# Read by cpack once per generator (CPACK_PROJECT_CONFIG_FILE).
# cpack builds the `preinstall` target (the whole project) before it installs. With
# TCPUNCH_CPACK_PREBUILT=1 in the environment it packages the binaries already built and
# builds nothing (tests/integration/test_package.sh runs beside other tests that use them):
# packaging/cpack-install.cmake runs the build tree's install script itself.
if("$ENV{TCPUNCH_CPACK_PREBUILT}" STREQUAL "1")
  set(CPACK_INSTALL_CMAKE_PROJECTS "")
  set(CPACK_INSTALL_SCRIPTS "${CPACK_TCPUNCH_SOURCE_DIR}/packaging/cpack-install.cmake")
endif()
