"""The error of the checkpoint readers."""


class CheckpointError(ValueError):
    """A checkpoint cannot be read or converted; the message says what was found and why."""
