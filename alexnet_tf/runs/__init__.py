"""The run directory: its layout, checkpoints and their recovery, the trainer's lock (rundir); new runs (latest)."""
