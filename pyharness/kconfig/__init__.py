"""Kconfig: a fragment or .config -> a checked configuration (resolve), the
files the build reads (outputs), menuconfig."""
