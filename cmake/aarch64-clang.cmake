# Toolchain file: bare-metal aarch64 with Clang and the LLVM binutils.
#
# Chosen by CONFIG_CC_IS_CLANG (cmake/select-toolchain.cmake). The tools
# are clang, ld.lld and llvm-objcopy (Debian/Ubuntu: apt-get install clang
# lld llvm). As in the kernel's LLVM= variable, $LLVM may name other
# versions: LLVM=-14 uses clang-14, ld.lld-14...; LLVM=/opt/llvm/bin/ uses
# /opt/llvm/bin/clang... The target is freestanding aarch64-none-elf: the
# firmware never links against a C library.
#
# Everything is LLVM, linker included (as a kernel built with LLVM=1, which
# is how Android, and so most pKVM, kernels are built): ld.lld reads the
# same linker scripts as GNU ld, which is part of what this configuration
# tests.

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(NVHE_LLVM_PREFIX "")
set(NVHE_LLVM_SUFFIX "")
if(DEFINED ENV{LLVM} AND NOT "$ENV{LLVM}" STREQUAL "" AND NOT "$ENV{LLVM}" STREQUAL "1")
  if("$ENV{LLVM}" MATCHES "/$")
    set(NVHE_LLVM_PREFIX "$ENV{LLVM}")
  elseif("$ENV{LLVM}" MATCHES "^-")
    set(NVHE_LLVM_SUFFIX "$ENV{LLVM}")
  endif()
endif()

set(NVHE_CLANG_TARGET aarch64-none-elf)
set(CMAKE_C_COMPILER "${NVHE_LLVM_PREFIX}clang${NVHE_LLVM_SUFFIX}")
set(CMAKE_C_COMPILER_TARGET ${NVHE_CLANG_TARGET})
set(CMAKE_ASM_COMPILER "${NVHE_LLVM_PREFIX}clang${NVHE_LLVM_SUFFIX}")
set(CMAKE_ASM_COMPILER_TARGET ${NVHE_CLANG_TARGET})
set(CMAKE_LINKER "${NVHE_LLVM_PREFIX}ld.lld${NVHE_LLVM_SUFFIX}")
set(CMAKE_OBJCOPY "${NVHE_LLVM_PREFIX}llvm-objcopy${NVHE_LLVM_SUFFIX}")
set(CMAKE_NM "${NVHE_LLVM_PREFIX}llvm-nm${NVHE_LLVM_SUFFIX}")

# Nothing can run or link against a libc here: try_compile makes a library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
