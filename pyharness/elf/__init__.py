"""Reading ELFs: one reader (reader), the one symbol rule and the kernel's
%pS/%pB renderings (symbols), DWARF lines (dwarf), the firmware image with
its layout record (image, layout), the scenario list (scenario_table), and
the decoder's symbolizer for any vmlinux (symbolizer)."""
