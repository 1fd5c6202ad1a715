# Build the nVHE unwinder from a Linux kernel tree instead of the lab's own.
#
# Included by CMakeLists.txt when NVHE_KERNEL_SRC is set. The tree's files
# are compiled unmodified, from the tree, against the compatibility headers
# in csrc/kcompat (searched before the tree's arch/arm64/include):
#
#   EL2: arch/arm64/kvm/hyp/nvhe/stacktrace.c   replaces csrc/hyp/stacktrace.c
#   EL1: arch/arm64/kvm/stacktrace.c            replaces the dump in csrc/host/handle_exit.c
#   both: arch/arm64/include/asm/stacktrace/{common,nvhe}.h
#
# plus the lab glue csrc/kcompat/{hyp,host}_glue.c and the record of the
# tree's numbers, csrc/kcompat/kernel_numbers.S. Every lab object and
# linker script is built with -DNVHE_KERNEL_UNWINDER and the tree's numbers
# (generated/kernel_numbers.h, evaluated by the compiler from the tree's
# asm/memory.h: pyharness.builder.kernel_numbers).
#
# In:  NVHE_KERNEL_SRC (the tree's top directory), NVHE_KERNEL_GEN (6.1,
#      6.12, 7.x, or empty: the generation whose API the tree has),
#      NVHE_CC, NVHE_PYTHON, NVHE_COMMON_FLAGS, NVHE_CONFIG_DIR,
#      NVHE_INCLUDES, NVHE_HYP_SOURCES.
# Out: NVHE_HYP_SOURCES without csrc/hyp/stacktrace.c; NVHE_INCLUDES with
#      the numbers' directory; the object libraries nvhe_hyp_ksrc and
#      nvhe_host_ksrc; NVHE_HYP_OBJECTS and NVHE_HOST_OBJECTS extended with
#      them; NVHE_KERNEL_DEFINES; NVHE_UNWINDER ("linux-<generation>", the
#      image's .nvhe_unwinder).

set(NVHE_KERNEL_GENERATIONS 6.1 6.12 7.x)
string(REPLACE ";" ", " nvhe_ksrc_supported "${NVHE_KERNEL_GENERATIONS}")

get_filename_component(NVHE_KERNEL_SRC "${NVHE_KERNEL_SRC}" ABSOLUTE)
if(NOT IS_DIRECTORY "${NVHE_KERNEL_SRC}")
  message(FATAL_ERROR "NVHE_KERNEL_SRC=${NVHE_KERNEL_SRC} is not a directory; "
                      "give the top directory of a Linux kernel tree")
endif()

set(NVHE_KERNEL_HYP_FILE "${NVHE_KERNEL_SRC}/arch/arm64/kvm/hyp/nvhe/stacktrace.c")
set(NVHE_KERNEL_HOST_FILE "${NVHE_KERNEL_SRC}/arch/arm64/kvm/stacktrace.c")
foreach(f arch/arm64/include/asm/stacktrace/common.h
          arch/arm64/include/asm/stacktrace/nvhe.h
          arch/arm64/kvm/hyp/nvhe/stacktrace.c
          arch/arm64/kvm/stacktrace.c)
  if(NOT EXISTS "${NVHE_KERNEL_SRC}/${f}")
    message(FATAL_ERROR "${NVHE_KERNEL_SRC} has no ${f}: not a kernel tree with the "
                        "nVHE stack unwinder (supported generations: ${nvhe_ksrc_supported})")
  endif()
endforeach()

if(NVHE_KERNEL_GEN AND NOT NVHE_KERNEL_GEN IN_LIST NVHE_KERNEL_GENERATIONS)
  message(FATAL_ERROR "kernel generation ${NVHE_KERNEL_GEN} (NVHE_KERNEL_SRC=${NVHE_KERNEL_SRC}) "
                      "is not supported; supported: ${nvhe_ksrc_supported}")
endif()

# The tree's generation (by its unwinder API, unless NVHE_KERNEL_GEN names
# one) and its numbers for this configuration, evaluated by the compiler:
# the module writes generated/kernel_numbers.h, then prints the generation
# and every file of the tree the evaluation read, so that an edit to any of
# them configures (and evaluates) again; it writes them as a depfile too
# (NVHE_CONFIGURE_DEPS_DIR), for the harness's build key.
set(nvhe_knum_dir "${CMAKE_BINARY_DIR}/kernel-numbers")
set(NVHE_KERNEL_NUMBERS_HEADER "${nvhe_knum_dir}/generated/kernel_numbers.h")
set(nvhe_knum_gen "")
if(NVHE_KERNEL_GEN)
  set(nvhe_knum_gen --generation "${NVHE_KERNEL_GEN}")
endif()
execute_process(
  COMMAND ${NVHE_PYTHON} -m pyharness.builder.kernel_numbers --tree "${NVHE_KERNEL_SRC}"
          ${nvhe_knum_gen} --config-dir "${NVHE_CONFIG_DIR}"
          --out "${NVHE_KERNEL_NUMBERS_HEADER}"
          --depfile "${NVHE_CONFIGURE_DEPS_DIR}/kernel_numbers.d" -- ${NVHE_CC}
  RESULT_VARIABLE nvhe_knum_rc OUTPUT_VARIABLE nvhe_knum_out ERROR_VARIABLE nvhe_knum_err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT nvhe_knum_rc EQUAL 0)
  message(FATAL_ERROR "${nvhe_knum_err}")
endif()
string(REPLACE "\n" ";" nvhe_knum_out "${nvhe_knum_out}")
list(POP_FRONT nvhe_knum_out NVHE_KERNEL_GEN)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${nvhe_knum_out})
list(APPEND NVHE_INCLUDES "${nvhe_knum_dir}")

message(STATUS "nVHE unwinder from ${NVHE_KERNEL_SRC} (generation ${NVHE_KERNEL_GEN})")

set(nvhe_kcompat "${CMAKE_CURRENT_SOURCE_DIR}/csrc/kcompat")
set(NVHE_KERNEL_DEFINES NVHE_KERNEL_UNWINDER)
set(NVHE_UNWINDER "linux-${NVHE_KERNEL_GEN}")

# Search order for the tree's files: the generation's compatibility
# headers, the common ones, the lab's configuration and headers (which the
# compatibility headers build on), and last the tree's own arch headers
# (only asm/stacktrace/ is taken from there).
set(NVHE_KERNEL_INCLUDES
  "${nvhe_kcompat}/${NVHE_KERNEL_GEN}" "${nvhe_kcompat}/common"
  "${NVHE_CONFIG_DIR}" "${nvhe_knum_dir}" "${CMAKE_CURRENT_SOURCE_DIR}/csrc/include"
  "${NVHE_KERNEL_SRC}/arch/arm64/include")

# The lab's flags (-Werror kept). kbuild force-includes the configuration;
# debug info names the tree's files as kbuild does, relative to the tree.
set(NVHE_KERNEL_FLAGS ${NVHE_COMMON_FLAGS}
  -include "${nvhe_kcompat}/common/linux/kconfig.h"
  "-ffile-prefix-map=${NVHE_KERNEL_SRC}/=")
# The tree's own files only: the two -Wextra warnings the kernel's W=1
# build turns off (its code compares int with size_t, and keeps unused
# parameters in the stubs without the protected stacktrace option).
set_source_files_properties("${NVHE_KERNEL_HYP_FILE}" "${NVHE_KERNEL_HOST_FILE}"
  PROPERTIES COMPILE_OPTIONS "-Wno-sign-compare;-Wno-unused-parameter")

list(FILTER NVHE_HYP_SOURCES EXCLUDE REGEX "/csrc/hyp/stacktrace\\.c$")

add_library(nvhe_hyp_ksrc OBJECT "${NVHE_KERNEL_HYP_FILE}" "${nvhe_kcompat}/hyp_glue.c")
target_compile_options(nvhe_hyp_ksrc PRIVATE ${NVHE_KERNEL_FLAGS})
target_compile_definitions(nvhe_hyp_ksrc PRIVATE __KVM_NVHE_HYPERVISOR__ ${NVHE_KERNEL_DEFINES})
target_include_directories(nvhe_hyp_ksrc PRIVATE ${NVHE_KERNEL_INCLUDES})

add_library(nvhe_host_ksrc OBJECT "${NVHE_KERNEL_HOST_FILE}" "${nvhe_kcompat}/host_glue.c"
            "${nvhe_kcompat}/kernel_numbers.S")
target_compile_options(nvhe_host_ksrc PRIVATE ${NVHE_KERNEL_FLAGS})
target_compile_definitions(nvhe_host_ksrc PRIVATE ${NVHE_KERNEL_DEFINES})
target_include_directories(nvhe_host_ksrc PRIVATE ${NVHE_KERNEL_INCLUDES})

list(APPEND NVHE_HYP_OBJECTS "$<TARGET_OBJECTS:nvhe_hyp_ksrc>")
list(APPEND NVHE_HOST_OBJECTS "$<TARGET_OBJECTS:nvhe_host_ksrc>")
