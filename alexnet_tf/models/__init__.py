"""The network: the functional two-tower AlexNet, its layers (LRN, tower pinning), where the towers run, and
the network run over crops."""
