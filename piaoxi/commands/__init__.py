"""Sub-commands of `piaoxi`, one module per command or group."""
