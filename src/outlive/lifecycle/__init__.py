"""The phases of a run: launch, watch (status), cancel, logs; later push, pull, down."""
