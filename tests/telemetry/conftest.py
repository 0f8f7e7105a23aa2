"""Pages looked at the way a person would: parsed into a DOM, and drawn by Debian's headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

_VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_CHROMIUM_TIMEOUT_S = 180  # a cold start on a busy 2-core machine can take tens of seconds


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        return [element for element in self.iter()
                if (tag is None or element.tag == tag) and (cls is None or cls in element.classes)]

    def find(self, tag: str | None = None, cls: str | None = None) -> Element:
        found = self.find_all(tag, cls)
        assert found, f"no <{tag or '*'} class={cls!r}>"
        return found[0]

    def by_id(self, element_id: str) -> Element:
        found = [element for element in self.iter() if element.attrs.get("id") == element_id]
        assert len(found) == 1, f"{len(found)} elements with id {element_id!r}"
        return found[0]

    def elements(self) -> list[Element]:
        return [child for child in self.children if isinstance(child, Element)]


class _DomBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self._stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self._stack[-1].children.append(element)
        if tag not in _VOID_TAGS:
            self._stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth].tag == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._stack[-1].children.append(data)


def parse_dom(markup: str) -> Element:
    builder = _DomBuilder()
    builder.feed(markup)
    builder.close()
    return builder.root


@pytest.fixture
def dom_of() -> Callable[[str], Element]:
    return parse_dom


class Chromium:
    """Debian's `chromium`, headless, one fresh profile per run, nothing it may fetch by itself."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self._binary = binary
        self._workdir = workdir
        self._runs = 0

    def _run(self, page: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
        self._runs += 1
        profile = self._workdir / f"chromium-profile-{self._runs}"
        command = [
            self._binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}", *args, page.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, timeout=_CHROMIUM_TIMEOUT_S)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
        return done

    def dom(self, page: Path) -> Element:
        """The DOM as Chromium built it (serialized after load, scripts included if any ran)."""
        return parse_dom(self._run(page, "--dump-dom").stdout.decode())

    def screenshot(self, page: Path, width: int = 1280, height: int = 2000) -> Any:
        """The top `width` x `height` CSS pixels of the page, as a Pillow RGB image (1 CSS px = 1 pixel)."""
        from PIL import Image

        target = self._workdir / f"screenshot-{self._runs + 1}.png"
        self._run(page, f"--screenshot={target}", f"--window-size={width},{height}", "--hide-scrollbars",
                  "--force-device-scale-factor=1", "--force-color-profile=srgb")
        with Image.open(target) as image:
            return image.convert("RGB")


@pytest.fixture
def chromium(tmp_path: Path) -> Chromium:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is missing: apt-get install -y chromium (.ci/test.sh installs it)"
    return Chromium(binary, tmp_path)

