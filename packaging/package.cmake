# The .deb: `cmake --build build --target package`, or `cpack --config build/CPackConfig.cmake`
# (tcpunch_<version>_<arch>.deb in the build directory). Included by the root CMakeLists.txt
# after its install() rules; the systemd units of TCPUNCH_UNITS are made and installed here.

# --- systemd units -------------------------------------------------------------------------
# The paths are the package's (prefix /usr), whatever this build's CMAKE_INSTALL_PREFIX.
set(TCPUNCH_PKG_PREFIX /usr)
set(TCPUNCH_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd units are installed, relative to the prefix")
include(${CMAKE_CURRENT_LIST_DIR}/unit.cmake)
foreach(u ${TCPUNCH_UNITS})
  get_filename_component(_name ${u} NAME)
  tcpunch_package_unit(${CMAKE_SOURCE_DIR}/${u} ${CMAKE_BINARY_DIR}/units/${_name}
                       ${TCPUNCH_PKG_PREFIX} ${CMAKE_INSTALL_BINDIR} ${CMAKE_INSTALL_DOCDIR})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${u})
  # Component "systemd", left out of a plain `cmake --install` (its units want the user only
  # the package creates; from source, deploy/ has the unit to copy). The package has them.
  install(FILES ${CMAKE_BINARY_DIR}/units/${_name} DESTINATION ${TCPUNCH_SYSTEMD_UNITDIR}
          COMPONENT systemd EXCLUDE_FROM_ALL)
endforeach()

# --- CPack: one Debian package ---------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tcpunch)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${TCPUNCH_PKG_PREFIX})
# everything of a plain install, and the units
set(CPACK_INSTALL_CMAKE_PROJECTS
    "${CMAKE_BINARY_DIR};tcpunch;Unspecified;/" "${CMAKE_BINARY_DIR};tcpunch;systemd;/")
set(TCPUNCH_PKG_MAINTAINER "tcpunch maintainers <maintainers@users.noreply.r-seed-5b57fd79.example>"
    CACHE STRING "Maintainer field of the .deb")
set(TCPUNCH_PKG_HOMEPAGE "" CACHE STRING "Homepage field of the .deb (left out when empty)")
set(CPACK_PACKAGE_CONTACT "${TCPUNCH_PKG_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${TCPUNCH_PKG_MAINTAINER}")
if(TCPUNCH_PKG_HOMEPAGE)
  set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${TCPUNCH_PKG_HOMEPAGE}")
endif()
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "direct TCP connections between hosts behind NATs")
set(CPACK_PACKAGE_DESCRIPTION
"tcpunch connects two hosts that are both behind NATs with a direct TCP
connection, by TCP simultaneous open arranged through a small rendezvous
server, and falls back to a relay through that server when no direct path
exists. Peers are named by ids bound to keys; traffic is end-to-end encrypted.
.
This package contains the peer program, tcpunch, and the rendezvous server,
tcpunch-rendezvous, with its systemd units (hardened, running as the tcpunch
system user), man pages and bash completion. The units are installed but not
enabled: choose the server's options with systemctl edit, then enable it.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # tcpunch_0.1.0_amd64.deb
find_program(TCPUNCH_DPKG dpkg)
if(TCPUNCH_DPKG)
  execute_process(COMMAND ${TCPUNCH_DPKG} --print-architecture
                  OUTPUT_VARIABLE CPACK_DEBIAN_PACKAGE_ARCHITECTURE OUTPUT_STRIP_TRAILING_WHITESPACE)
endif()
# Depends from the binaries themselves (dpkg-shlibdeps, dpkg-dev), with the versions the
# build linked against; without dpkg-shlibdeps, the libraries of Debian 12 by name.
find_program(TCPUNCH_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(TCPUNCH_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "libc6 (>= 2.34), libuv1 (>= 1.44), libjansson4 (>= 2.14), libsodium23 (>= 1.0.18), libhiredis0.14 (>= 0.14.1)")
endif()
# Stripped, as Debian policy wants: the debug info of RelWithDebInfo stays in the build tree.
# Stripping keeps the hardening (PIE, RELRO, BIND_NOW, the CET note, the _chk imports).
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/postinst ${CMAKE_SOURCE_DIR}/packaging/prerm
    ${CMAKE_SOURCE_DIR}/packaging/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# cpack-time settings (TCPUNCH_CPACK_PREBUILT: package what is built, build nothing)
set(CPACK_TCPUNCH_SOURCE_DIR ${CMAKE_SOURCE_DIR})
set(CPACK_TCPUNCH_BINARY_DIR ${CMAKE_BINARY_DIR})
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_SOURCE_DIR}/packaging/cpack-options.cmake)
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/;/\\\\.git$;/build[^/]*/")
include(CPack)
