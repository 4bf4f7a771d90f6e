"""The one error type for a record that cannot be used: a short machine-readable ``reason``
(dead-letter header, metric label) and a ``detail`` for people."""


class RecordError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DecodeError(RecordError):
    """Bytes that are not a record of a known schema."""


class InvalidEvent(RecordError):
    """A decoded record whose values break the contract (missing image, times out of order...)."""
