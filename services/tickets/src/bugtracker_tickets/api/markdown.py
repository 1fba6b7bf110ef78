"""Markdown to safe HTML with kept libraries: markdown-it-py renders, nh3 sanitizes."""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


@lru_cache(maxsize=4096)
def render(markdown: str) -> str:
    return nh3.clean(_markdown.render(markdown), link_rel="noopener noreferrer nofollow")
