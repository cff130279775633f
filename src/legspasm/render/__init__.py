"""Views of an Assessment: plain text and Markdown, with numbered citations."""

from .report import render_markdown, render_text

__all__ = ["render_markdown", "render_text"]
