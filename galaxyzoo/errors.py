"""The one exception type for bad input that a user can fix."""


class GalaxyZooError(Exception):
    """Bad input: a missing or corrupt file, a malformed CSV, an invalid config value.

    The message names the file (or key) and what is wrong; the CLI prints it on
    one line and exits with status 2 instead of showing a traceback.
    """
