"""Engine backends behind one interface (lands with the runtime issue)."""
