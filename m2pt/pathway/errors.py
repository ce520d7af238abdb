"""The one exception type of the pathway API."""


class PathwayError(ValueError):
    """Raised when pathways cannot be attached, merged, saved or loaded as asked.

    The message always names the layer involved and says how to fix the problem.
    """
