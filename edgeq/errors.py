"""The one error type users see: a cause and a fix, printed as one line by the CLI."""


class EdgeqError(Exception):
    """A problem with the user's input or machine, explained as cause + fix.

    Raise it for anything a user can act on (bad model file, unsupported op, missing
    toolchain, model too big); the CLI prints `error: <cause> (fix: <fix>)` and exits 1,
    with no traceback. Internal bugs stay ordinary exceptions.
    """

    def __init__(self, cause: str, fix: str = ""):
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.cause} (fix: {self.fix})" if self.fix else self.cause
