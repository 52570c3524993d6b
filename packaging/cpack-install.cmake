# cpack's install step without its build step (packaging/cpack-options.cmake): the build
# tree's install script, for the components CPACK_INSTALL_CMAKE_PROJECTS names, stripped as
# CPACK_STRIP_FILES says.
# cpack stages into $ENV{DESTDIR}; the prefix is the package's, not this build's
set(CMAKE_INSTALL_PREFIX "${CPACK_PACKAGING_INSTALL_PREFIX}")
if(CPACK_STRIP_FILES)
  set(CMAKE_INSTALL_DO_STRIP 1)
endif()
foreach(CMAKE_INSTALL_COMPONENT Unspecified systemd)
  include("${CPACK_TCPUNCH_BINARY_DIR}/cmake_install.cmake")
endforeach()
unset(CMAKE_INSTALL_COMPONENT)
