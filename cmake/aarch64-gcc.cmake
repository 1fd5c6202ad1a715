# Toolchain file: bare-metal aarch64 with GNU GCC and binutils.
#
# The compiler is ${CROSS_COMPILE}gcc, CROSS_COMPILE defaulting to
# "aarch64-linux-gnu-" (Debian/Ubuntu: apt-get install gcc-aarch64-linux-gnu).
# The Linux-targeting compiler is fine: the firmware is freestanding and
# never links against its C library.

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(DEFINED ENV{CROSS_COMPILE} AND NOT "$ENV{CROSS_COMPILE}" STREQUAL "")
  set(NVHE_CROSS_COMPILE "$ENV{CROSS_COMPILE}")
else()
  set(NVHE_CROSS_COMPILE "aarch64-linux-gnu-")
endif()

set(CMAKE_C_COMPILER "${NVHE_CROSS_COMPILE}gcc")
set(CMAKE_ASM_COMPILER "${NVHE_CROSS_COMPILE}gcc")
set(CMAKE_LINKER "${NVHE_CROSS_COMPILE}ld")
set(CMAKE_OBJCOPY "${NVHE_CROSS_COMPILE}objcopy")
set(CMAKE_NM "${NVHE_CROSS_COMPILE}nm")

# Nothing can run or link against a libc here: try_compile makes a library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
