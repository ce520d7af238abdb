"""Exception types of the data package."""


class DatasetError(ValueError):
    """A dataset cannot be built or read as asked.

    The message always names the path or value involved and says how to fix the problem.
    """


class TooManyBadFilesError(DatasetError):
    """More files of a dataset failed to load than the configured tolerance allows."""


class MissingSystemPackageError(DatasetError):
    """A built-in dataset needs a Debian package that is not installed."""
