"""pyharness: build the nVHE stack-unwinder lab firmware per Kconfig
configuration, run it on an emulated arm64 platform and check its dumps."""

__version__ = "0.1.0"
