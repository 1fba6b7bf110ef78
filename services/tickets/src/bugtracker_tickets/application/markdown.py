"""Markdown to safe HTML with kept libraries: markdown-it-py renders, nh3 sanitizes.

A description or a comment body is rendered once, when it is written, and the HTML is
stored beside the text (docs/adr/0025): reads serve the stored HTML and never render, so
no cache of rendered text is needed (a cache keyed on the whole text would hold up to
50 k characters an entry)."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render(markdown: str) -> str:
    return nh3.clean(_markdown.render(markdown), link_rel="noopener noreferrer nofollow")
