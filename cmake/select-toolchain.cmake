# Pick the toolchain file from the configuration's compiler choice
# (CONFIG_CC_IS_GCC / CONFIG_CC_IS_CLANG). CMake reads the toolchain file
# in project(), before CMakeLists.txt includes config.cmake, so the choice
# is read here from the same place: NVHE_CONFIG_DIR/config.cmake as written
# by `pyharness build`, or else (a pip install) the NVHE_DEFCONFIG fragment
# given on the command line. An explicit -DCMAKE_TOOLCHAIN_FILE wins;
# CMakeLists.txt checks after project() that the compiler matches the
# configuration either way.
if(NOT CMAKE_TOOLCHAIN_FILE)
  set(nvhe_cc gcc)
  if(NVHE_CONFIG_DIR AND EXISTS "${NVHE_CONFIG_DIR}/config.cmake")
    file(STRINGS "${NVHE_CONFIG_DIR}/config.cmake" nvhe_clang
         REGEX "^set\\(CONFIG_CC_IS_CLANG \"y\"\\)$")
  elseif(NVHE_DEFCONFIG AND EXISTS "${NVHE_DEFCONFIG}")
    file(STRINGS "${NVHE_DEFCONFIG}" nvhe_clang REGEX "^CONFIG_CC_IS_CLANG=y$")
  endif()
  if(nvhe_clang)
    set(nvhe_cc clang)
  endif()
  set(CMAKE_TOOLCHAIN_FILE "${CMAKE_CURRENT_LIST_DIR}/aarch64-${nvhe_cc}.cmake")
endif()
