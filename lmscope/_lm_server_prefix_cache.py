"""A simulation of provider prompt caching (OpenAI's automatic prefix caching), for honest `cached_tokens`.

A real provider keeps the attention state of recent prompts and bills the longest prefix a new prompt
shares with one of them as cached input, in fixed-size blocks (OpenAI: prompts of 1024+ tokens, 128-token
increments). This simulation keeps the idea and drops the thresholds so small test prompts show it:

    cached_tokens = floor(longest common token prefix with any remembered prompt / block) * block

It remembers the last `capacity` prompts per model. Prompts are stored as a trie of whole blocks, so a
lookup costs one dict probe per block instead of a comparison against every remembered prompt; a prefix
that ends inside a block is rounded down exactly as the formula says.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

DEFAULT_CAPACITY = 512


class _Node:
    __slots__ = ("children", "prompts")

    def __init__(self) -> None:
        self.children: dict[tuple[int, ...], _Node] = {}
        self.prompts = 0  # remembered prompts passing through this node; the node dies at 0


class PrefixCache:
    def __init__(self, block_tokens: int, capacity: int = DEFAULT_CAPACITY) -> None:
        if block_tokens < 1:
            raise ValueError(f"cache_block_tokens must be >= 1, got {block_tokens}")
        self.block_tokens = block_tokens
        self.capacity = capacity
        self._lock = threading.Lock()
        self._roots: dict[str, _Node] = {}
        self._remembered: dict[str, deque[list[tuple[int, ...]]]] = {}

    def _blocks(self, tokens: Sequence[int]) -> list[tuple[int, ...]]:
        size = self.block_tokens
        return [tuple(tokens[start:start + size]) for start in range(0, len(tokens) - size + 1, size)]

    def lookup_and_remember(self, model: str, tokens: Sequence[int]) -> int:
        """Cached tokens for this prompt (0 the first time its first block is seen); then remember it."""
        blocks = self._blocks(tokens)
        with self._lock:
            root = self._roots.setdefault(model, _Node())
            cached_blocks = 0
            node = root
            for block in blocks:
                child = node.children.get(block)
                if child is None:
                    break
                cached_blocks += 1
                node = child
            self._remember(model, root, blocks)
        return cached_blocks * self.block_tokens

    def _remember(self, model: str, root: _Node, blocks: list[tuple[int, ...]]) -> None:
        node = root
        for block in blocks:
            node = node.children.setdefault(block, _Node())
            node.prompts += 1
        remembered = self._remembered.setdefault(model, deque())
        remembered.append(blocks)
        if len(remembered) > self.capacity:
            self._forget(root, remembered.popleft())

    @staticmethod
    def _forget(root: _Node, blocks: list[tuple[int, ...]]) -> None:
        node = root
        for block in blocks:
            child = node.children[block]
            child.prompts -= 1
            if child.prompts == 0:
                del node.children[block]  # the whole subtree belonged to this prompt alone
                return
            node = child

    def clear(self) -> None:
        with self._lock:
            self._roots.clear()
            self._remembered.clear()
