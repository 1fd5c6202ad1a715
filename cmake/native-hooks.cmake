# The harness's native hooks library (native/, see pyharness/platform/native.py),
# built for a pip install next to the firmware image.
#
# It is host code while this project is cross-compiled (its toolchain file
# sets the compilers for the whole project), so native/ is its own CMake
# project, configured and built as an ExternalProject with the host C
# compiler. Without a host compiler the install goes on without it and the
# harness uses its Python callbacks (same verdicts, slower).
#
# NVHE_HOST_CC names the host compiler (default: cc, gcc or clang on PATH).
include(ExternalProject)

find_program(NVHE_HOST_CC NAMES cc gcc clang
             DOC "Host C compiler for the native hooks library (native/)")

if(NOT NVHE_HOST_CC)
  message(WARNING "No host C compiler (cc, gcc or clang): pyharness is installed "
                  "without its native hooks and will use the slower Python ones. "
                  "Install gcc (apt-get install gcc libc6-dev) and reinstall.")
  return()
endif()

set(NVHE_NATIVE_DIR "${CMAKE_BINARY_DIR}/native-hooks")
# The name pyharness/platform/native.py loads (the harness runs on Linux hosts).
set(NVHE_NATIVE_LIB "${NVHE_NATIVE_DIR}/libnvhe_hooks.so")

ExternalProject_Add(nvhe_native_hooks
  SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/../native"
  BINARY_DIR "${NVHE_NATIVE_DIR}"
  # Only the host compiler: none of this project's cross settings.
  CMAKE_ARGS -DCMAKE_C_COMPILER=${NVHE_HOST_CC} -DCMAKE_BUILD_TYPE=Release
             -DCMAKE_TOOLCHAIN_FILE=
  # A changed native/ source rebuilds on the next install.
  BUILD_ALWAYS ON
  BUILD_BYPRODUCTS "${NVHE_NATIVE_LIB}"
  INSTALL_COMMAND "")

install(FILES "${NVHE_NATIVE_LIB}" DESTINATION pyharness/_lib)
