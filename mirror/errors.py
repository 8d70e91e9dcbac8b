"""The mirror's error tree. Retry loops ask an error's `retriable` flag, not its type."""

from __future__ import annotations


class MirrorError(Exception):
    """Base of every error the mirror raises on purpose."""

    retriable = False


class ConfigError(MirrorError):
    """The configuration is unusable; the message names the key."""


class SerializationError(MirrorError):
    """A message could not be parsed into (or built from) an event of the contract."""


class BusError(MirrorError):
    """The bus refused or could not take a message; usually passes (broker restarting)."""

    retriable = True


class BusClosedError(BusError):
    """The bus was stopped; nothing more will be accepted."""

    retriable = False


class Untranslatable(MirrorError):
    """A request or an answer uses something the other API cannot express faithfully.

    The runner skips the arm for that call and records `reason` (it names the parameter or the
    message path, e.g. `messages[3].content[1]: input_audio ...`) instead of sending a request
    that would differ from the one the app made; the sidecar serves the call from the primary
    instead of an answer that would differ from the candidate's.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TruncatedStream(MirrorError):
    """A translated stream's source ended without its terminal event (`message_stop`, `[DONE]`).

    Raised by `StreamTranslator.close()`: what arrived has been translated and emitted, and no
    clean end is made up for the rest; the caller breaks the client's stream so its SDK sees it.
    """
