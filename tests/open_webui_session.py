"""A user's session in Open WebUI, in Debian's Chromium driven by Playwright, against the proxy.

Run by the Open WebUI environment's python (tests/clients/test_open_webui.py starts it), which has Playwright; the
proxy's own environment has none. ``python open_webui_session.py URL CHROMIUM SHOTS``: opens the UI at URL, closes
the "What's New" pop-up, reads the model selector, sends a message, a second one, a third whose answer it stops
mid-stream and regenerates, and a last one; a screenshot of each step goes to SHOTS. What the user saw is printed
as one JSON object, the last line of stdout. A step that never shows what it waits for raises Playwright's
TimeoutError, with a screenshot of that moment (``failed.png``).
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

from playwright.sync_api import Locator, Page, expect, sync_playwright

# No sandbox (CI runs as root), no GPU, and none of the browser's own traffic: the machine may be offline.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
# Waits for the UI itself, and for an answer: on two CPU cores an answer shares the engine with Open WebUI's
# title, follow-up and tag requests, and can take minutes to write on a busy machine.
UI_TIMEOUT_MS = 60_000
ANSWER_TIMEOUT_MS = 600_000

PROMPTS = {
    "first": "Hello! What is the capital of France?",
    "second": "And what is the capital of Italy?",
    # Stopped at its first words, then regenerated in full: a story is long enough to stop, short enough to end.
    "stopped": "Tell me a story about a dragon who learns to bake bread.",
    "last": "Thank you! Please say goodbye.",
}
_TEXT = re.compile(r"\S")


@dataclass
class Seen:
    """What the user saw, step by step."""

    selected_model: str = ""
    listed_models: list[str] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # step -> the answer's text when the step ended
    shown: dict[str, str] = field(default_factory=dict)  # step -> all the message showed (an error, say)
    streamed: dict[str, bool] = field(default_factory=dict)  # step -> text was on screen before the answer was done
    versions: str = ""  # the regenerated answer's "2/2": it and the stopped one
    user_messages: int = 0
    assistant_messages: int = 0
    shots: list[str] = field(default_factory=list)


class Session:
    """One browser tab, one conversation; each step records what it saw and screenshots it."""

    def __init__(self, page: Page, shots: Path) -> None:
        self.page, self.shots, self.seen = page, shots, Seen()

    def shot(self, name: str) -> None:
        path = self.shots / f"{len(self.seen.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.seen.shots.append(path.name)

    def _assistant(self, index: int) -> Locator:
        # One per answer on screen (the version shown, after a regeneration); message-input-container has none.
        return self.page.locator('div[id^="message-"]:has(.chat-assistant)').nth(index)

    @staticmethod
    def _answer(message: Locator) -> Locator:
        # The model's text, rendered; an error shows beside it, in the same container, never in it.
        return message.locator("#response-content-container .markdown-prose").first

    def _stop(self) -> Locator:
        return self.page.get_by_role("button", name="Stop", exact=True)

    def open(self, url: str) -> None:
        self.page.goto(url, wait_until="load")  # never "networkidle": the UI keeps a socket busy
        # A fresh DATA_DIR's first page shows the release notes; the user closes them first.
        self.page.get_by_role("button", name="Okay, Let's Go!").click()
        expect(self.page.locator("#chat-input")).to_be_visible()
        self.shot("opened")

    def read_models(self) -> None:
        selector = self.page.locator("#model-selector-model-button")
        expect(selector).to_have_text(_TEXT)
        self.seen.selected_model = selector.inner_text().strip()
        selector.click()
        options = self.page.locator('#model-selector-list button[id^="model-option-"]')
        expect(options.first).to_be_visible()
        self.seen.listed_models = [text.split()[0] for text in options.all_inner_texts()]
        self.shot("model-selector")
        self.page.keyboard.press("Escape")
        expect(options.first).to_be_hidden()

    def send(self, step: str) -> Locator:
        """Type the step's prompt, send it, and wait for its answer to begin on screen."""
        index = self.page.locator(".chat-assistant").count()
        self.page.locator("#chat-input").click()
        self.page.keyboard.type(PROMPTS[step])
        self.page.locator("#send-message-button").click()
        expect(self.page.locator(".chat-user")).to_have_count(index + 1)
        return self._appearing(step, self._assistant(index))

    def _appearing(self, step: str, message: Locator) -> Locator:
        """``message`` once the answer's text shows in it, noting whether it was still streaming then."""
        content = message.locator("#response-content-container")
        # Text in the answer, or the message done (an error, or nothing at all): the next wait tells which.
        done = message.get_by_role("button", name="Regenerate")
        expect(self._answer(message).or_(done).first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        self.seen.streamed[step] = self._answer(message).is_visible() and not done.is_visible()
        self.shot(f"{step}-streaming")
        self.seen.shown[step] = content.inner_text().strip()
        return message

    def finish(self, step: str, message: Locator) -> None:
        """Wait for the answer to end: its buttons (Regenerate among them) show once it is done. Stop may stay on
        longer, while Open WebUI's title, follow-up and tag requests for it run."""
        expect(message.get_by_role("button", name="Regenerate")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        answer = self._answer(message)
        self.seen.answers[step] = answer.inner_text().strip() if answer.count() else ""
        self.seen.shown[step] = message.locator("#response-content-container").inner_text().strip()
        self.shot(f"{step}-answered")

    def stop(self, step: str, message: Locator) -> None:
        # Only an answer being written is stopped: Stop stays offered while Open WebUI's title, follow-up and tag
        # requests run, and would cancel those instead.
        if self.seen.streamed[step]:
            self._stop().click()
        self.finish(step, message)

    def regenerate(self, step: str, message: Locator) -> None:
        # Regenerate opens a menu (Open WebUI's default): "Try Again" asks for the same answer anew.
        message.get_by_role("button", name="Regenerate").click()
        self.page.get_by_role("button", name="Try Again").click()
        # The new version replaces the stopped one on screen; the stopped one stays a click away ("2/2").
        versions = message.get_by_text("2/2", exact=True)
        expect(versions).to_be_visible()
        self.seen.versions = versions.inner_text().strip()
        self.finish(step, self._appearing(step, message))

    def count(self) -> None:
        self.seen.user_messages = self.page.locator(".chat-user").count()
        self.seen.assistant_messages = self.page.locator(".chat-assistant").count()


def converse(session: Session, url: str) -> None:
    session.open(url)
    session.read_models()
    for step in ("first", "second"):
        session.finish(step, session.send(step))
    stopped = session.send("stopped")
    session.stop("stopped", stopped)
    session.regenerate("regenerated", stopped)
    session.finish("last", session.send("last"))
    session.count()


def main(url: str, chromium: str, shots: Path) -> Seen:
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            session = Session(page, shots)
            try:
                converse(session, url)
            except BaseException:
                with suppress(Exception):  # a crashed page has no picture; its error is the one to see
                    page.screenshot(path=str(shots / "failed.png"), full_page=True)
                print(json.dumps(asdict(session.seen)), file=sys.stderr)
                raise
            return session.seen
        finally:
            browser.close()


if __name__ == "__main__":
    print(json.dumps(asdict(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))))
