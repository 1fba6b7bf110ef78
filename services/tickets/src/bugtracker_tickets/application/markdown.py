"""Markdown to safe HTML with kept libraries: markdown-it-py renders, nh3 sanitizes.

A description or a comment body is rendered once, when it is written, and the HTML is
stored beside the text (docs/adr/0025): reads serve the stored HTML and never render, so
no cache of rendered text is needed.

Bounds (docs/security.md): markdown-it-py's inline parser is quadratic in some shapes of
input (`"![" * 25_000` takes 1.5 s on this machine), so a text with more than
`MAX_MARKUP_CHARACTERS` markup characters is not parsed as markdown at all: it is shown
as escaped preformatted text, which is linear. Below the bound the worst shape measured
renders in about 0.1 s, and texts longer than `OFF_LOOP_LENGTH` render in a worker thread,
so the event loop keeps serving other requests meanwhile.

Images are not embedded: an `<img>` pointing anywhere would load when the ticket is shown
(a tracking pixel, or a request into the viewer's network), so `![alt](url)` becomes a
plain link to the image, `<a href="url">alt</a>`. A link or image to
`attachment:<id>` (an attachment of the ticket, docs/adr/0041) points at the
attachment's download path instead, which only the project's members can read.
"""

from __future__ import annotations

import asyncio
import html
import uuid
from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

from bugtracker_tickets.domain.attachments import REFERENCE, download_path

# The characters markdown's inline and table syntax is made of.
MARKUP = "[]()!*_`<>&|#\\"
MAX_MARKUP_CHARACTERS = 3_000
OFF_LOOP_LENGTH = 2_000
TAGS = nh3.ALLOWED_TAGS - {"img"}


def _attachment_urls(state: StateCore) -> None:
    """`attachment:<id>` as a link's or an image's target: the download path."""
    for block in state.tokens:
        for token in block.children or []:
            for name in ("href", "src"):
                target = token.attrGet(name)
                found = REFERENCE.fullmatch(str(target)) if target else None
                if found:
                    token.attrSet(name, download_path(uuid.UUID(found.group(1))))


def _image_as_link(
    renderer: RendererHTML, tokens: Sequence[Token], index: int, options: Any, env: Any
) -> str:
    token = tokens[index]
    src = str(token.attrGet("src") or "")
    alt = renderer.renderInlineAsText(token.children or [], options, env) or src
    return f'<a href="{html.escape(src)}">{html.escape(alt)}</a>'


_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_markdown.add_render_rule("image", _image_as_link)
_markdown.core.ruler.push("attachment_urls", _attachment_urls)


def plain(text: str) -> str:
    """The text as escaped preformatted HTML (no markdown)."""
    return f"<pre>{html.escape(text)}</pre>\n"


def render(markdown: str) -> str:
    if sum(markdown.count(c) for c in MARKUP) > MAX_MARKUP_CHARACTERS:
        return plain(markdown)
    return nh3.clean(_markdown.render(markdown), tags=TAGS, link_rel="noopener noreferrer nofollow")


async def to_html(markdown: str) -> str:
    """`render`, in a worker thread when the text is long."""
    if len(markdown) > OFF_LOOP_LENGTH:
        return await asyncio.to_thread(render, markdown)
    return render(markdown)
