"""The emulated platform: address spaces and stack geometry, the Unicorn
machine and its run loop, MMIO devices, EL2 exception entry, aborts, traps,
budgets, per-CPU isolation."""
