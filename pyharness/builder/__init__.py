"""The cached firmware build: the cross toolchain, CMake per configuration
keyed by (.config, sources, toolchain), and the firmware's own kallsyms
generator."""
