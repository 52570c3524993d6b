# tcpunch_package_unit(IN OUT PREFIX BINDIR DOCDIR): the packaged copy of a deploy/ systemd unit.
# deploy/ holds the units for a hand install from source (/usr/local/bin, DynamicUser=). The
# package installs the same units, hardening and all, with two differences made here rather
# than kept by hand in a second copy that would drift: the package's paths, and the static
# `tcpunch` system user its postinst creates (an operator can chown files to it: --authorized,
# the Redis password of the cluster template). DynamicUser= implied RemoveIPC=; a static user
# has to say it. A service that would run as anyone else, or a /usr/local path left over, is
# an error: the package must not ship a unit that quietly differs from what deploy/ says.
#
# Also a script (tests/unit/test_units.sh):
#   cmake -DIN=unit -DOUT=file [-DPREFIX=/usr] -P packaging/unit.cmake
function(tcpunch_package_unit in out prefix bindir docdir)
  file(READ "${in}" unit)
  string(REPLACE "/usr/local/bin/" "${prefix}/${bindir}/" unit "${unit}")
  string(REPLACE "/usr/local/share/doc/tcpunch" "${prefix}/${docdir}" unit "${unit}")
  string(REPLACE "DynamicUser=yes" "User=tcpunch\nGroup=tcpunch\nRemoveIPC=yes" unit "${unit}")
  if(unit MATCHES "\\[Service\\]" AND NOT unit MATCHES "\nUser=tcpunch\n")
    message(FATAL_ERROR "${in}: no DynamicUser=yes nor User=tcpunch line; packaging/unit.cmake "
                        "cannot make the packaged unit run as the tcpunch user")
  endif()
  string(REGEX MATCHALL "\n(User|Group)=[^\n]*" ids "\n${unit}")
  foreach(l ${ids})
    if(NOT l MATCHES "^\n(User|Group)=tcpunch$")
      string(STRIP "${l}" l)
      message(FATAL_ERROR "${in}: ${l}: the package's units run as tcpunch")
    endif()
  endforeach()
  if(unit MATCHES "/usr/local/")
    message(FATAL_ERROR "${in}: a /usr/local/ path packaging/unit.cmake does not translate")
  endif()
  file(WRITE "${out}" "${unit}")
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  if(NOT DEFINED PREFIX)
    set(PREFIX /usr)
  endif()
  tcpunch_package_unit("${IN}" "${OUT}" "${PREFIX}" bin share/doc/tcpunch)
endif()
