"""The key directory, kept current: the file is read again when it changes (checked every second) and on SIGHUP,
without dropping a request; a file that no longer reads keeps the last good directory, and the log says why."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterable

from app.tenants.directory import Directory, load_directory

__all__ = ["KeyFile"]

_log = logging.getLogger(__name__)
_Stamp = tuple[int, int, int] | None


class KeyFile:
    def __init__(self, inline: Iterable[str], path: str = "") -> None:
        self._inline, self.path = tuple(inline), path
        self.directory: Directory = load_directory(self._inline, path)  # a broken file at start-up is fatal
        self._stamp = self._stat()

    def reload(self) -> bool:
        try:
            directory = load_directory(self._inline, self.path)
        except (OSError, ValueError) as exc:
            _log.warning("API_KEYS_FILE %s not reloaded, the last good keys stay in use: %s", self.path, exc)
            return False
        self.directory = directory
        _log.info("API_KEYS_FILE %s reloaded: %d tenants", self.path, len(directory.tenants))
        return True

    def check(self) -> None:
        """Reload if the file changed since it was last looked at."""
        if (stamp := self._stat()) != self._stamp:
            self._stamp = stamp
            self.reload()

    async def watch(self, interval: float = 1.0) -> None:
        if not self.path:
            return
        loop = asyncio.get_running_loop()
        hangup = False
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            loop.add_signal_handler(signal.SIGHUP, self.reload)
            hangup = True
        try:
            while True:
                await asyncio.sleep(interval)
                self.check()
        finally:
            if hangup:
                loop.remove_signal_handler(signal.SIGHUP)

    def _stat(self) -> _Stamp:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size, stat.st_ino
