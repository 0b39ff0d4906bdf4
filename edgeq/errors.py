"""The one error type users see: a cause and a fix, printed as one line by the CLI."""


class EdgeqError(Exception):
    """A problem with the user's input or machine, explained as cause + fix.

    Raise it for anything a user can act on (bad model file, unsupported op, missing
    toolchain, model too big); the CLI prints `error: <cause> (fix: <fix>)` and exits with
    `exit_code` (1), with no traceback. Internal bugs stay ordinary exceptions.
    """

    exit_code = 1

    def __init__(self, cause: str, fix: str = ""):
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.cause} (fix: {self.fix})" if self.fix else self.cause


class CheckMismatch(EdgeqError):
    """A run finished but its outputs differ from the integer reference (`edgeq run --check`,
    a flashed firmware's self-check): the CLI exits 3, so scripts can tell it from an error."""

    exit_code = 3
