"""Untrusted text made safe to print on a terminal: control characters escaped.

Payloads, partition keys and anything else a stream's writers choose end up on operators'
terminals (``shardline tail``, ``stream-bench hotshards``).  C0 controls, DEL and C1 controls
there are escape sequences that clear the screen, move the cursor, rewrite a line or retitle
the window, and bidirectional overrides reorder what follows them; printed escaped, they are
only text.  ``rich`` strips a few (BEL, BS, CR) and passes ESC through, so its markup escaping
is not enough on its own.
"""

from __future__ import annotations

from typing import Final

__all__ = ["json_printable", "printable"]

_CONTROLS: Final = (*range(0x20), 0x7F, *range(0x80, 0xA0))
_LAYOUT: Final = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)
"""Bidirectional marks, embeddings, overrides and isolates, and the line and paragraph
separators: not controls to the terminal, but a terminal that lays out bidirectional text
shows what follows an override (the rest of the key, the payload after it) reversed, and
viewers that break lines at U+2028/U+2029 show one record as two lines."""
_SURROGATES: Final = range(0xD800, 0xE000)
"""Lone surrogates: a Kafka key that is not UTF-8 is decoded with ``surrogateescape`` (its
byte 0xNN becomes U+DCNN), and a strict UTF-8 stdout refuses to write one at all."""
_TEXT_ESCAPES: Final = str.maketrans(
    {
        **{code: f"\\x{code:02x}" for code in _CONTROLS},
        **{code: f"\\u{code:04x}" for code in _LAYOUT},
        **{code: f"\\u{code:04x}" for code in _SURROGATES},
        **{0xDC00 + byte: f"\\x{byte:02x}" for byte in range(0x80, 0x100)},  # the original byte
    }
)
_JSON_ESCAPES: Final = str.maketrans(
    {code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0), *_LAYOUT, *_SURROGATES)}
)


def printable(text: str) -> str:
    """``text`` with every C0, DEL and C1 control written as ``\\xNN``, a bidirectional
    formatting character or line separator as ``\\uNNNN``, and a lone surrogate as the byte
    ``surrogateescape`` made it from (``\\xNN``) or as ``\\uNNNN``."""
    return text.translate(_TEXT_ESCAPES)


def json_printable(document: str) -> str:
    """A JSON text with DEL, C1 controls, bidirectional formatting characters, line separators
    and lone surrogates written as ``\\uNNNN`` escapes (``json.dumps`` escapes C0 itself, but
    not these with ``ensure_ascii=False``); it parses to the same value, and it encodes as UTF-8."""
    return document.translate(_JSON_ESCAPES)
