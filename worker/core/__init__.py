"""The pure NumPy core: the network, its training loop, snapshots and evaluation; no I/O."""
