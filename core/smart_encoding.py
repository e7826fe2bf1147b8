"""Smart encoding: a body pasted from a word processor carries curly quotes, dashes, an
ellipsis or a non-breaking space, each of which alone turns a 1-segment GSM-7 message
into a UCS-2 one of 2 or 3 segments (and the price with it). With smart encoding on (the
tenant's setting, or a message's ``smart_encoding``), those characters are replaced by
their GSM-7 look-alikes before the body is segmented, and the message stores the text
actually sent.

Only when that makes the whole body GSM-7: a body that keeps a character with no GSM-7
equivalent (an emoji, Cyrillic...) stays UCS-2 as written, since replacing its quotes
would change the text and save nothing. Letters with accents are not replaced: dropping
an accent changes a word, a look-alike quote does not.

The table is the punctuation and space part of Twilio's Smart Encoding character list
(https://www.twilio.com/docs/messaging/services/smart-encoding-char-list), character
names and code points from the Unicode Character Database
(https://www.unicode.org/Public/UCD/latest/ucd/UnicodeData.txt).
"""

from __future__ import annotations

from core import segments

LOOKALIKES: dict[str, str] = {
    # Quotation marks.
    "\u2018": "'",  # LEFT SINGLE QUOTATION MARK
    "\u2019": "'",  # RIGHT SINGLE QUOTATION MARK (also the typographic apostrophe)
    "\u201a": "'",  # SINGLE LOW-9 QUOTATION MARK
    "\u201b": "'",  # SINGLE HIGH-REVERSED-9 QUOTATION MARK
    "\u2032": "'",  # PRIME
    "\u02bc": "'",  # MODIFIER LETTER APOSTROPHE
    "\u201c": '"',  # LEFT DOUBLE QUOTATION MARK
    "\u201d": '"',  # RIGHT DOUBLE QUOTATION MARK
    "\u201e": '"',  # DOUBLE LOW-9 QUOTATION MARK
    "\u201f": '"',  # DOUBLE HIGH-REVERSED-9 QUOTATION MARK
    "\u2033": '"',  # DOUBLE PRIME
    "\u00ab": '"',  # LEFT-POINTING DOUBLE ANGLE QUOTATION MARK
    "\u00bb": '"',  # RIGHT-POINTING DOUBLE ANGLE QUOTATION MARK
    "\u2039": "<",  # SINGLE LEFT-POINTING ANGLE QUOTATION MARK
    "\u203a": ">",  # SINGLE RIGHT-POINTING ANGLE QUOTATION MARK
    # Dashes and hyphens.
    "\u2010": "-",  # HYPHEN
    "\u2011": "-",  # NON-BREAKING HYPHEN
    "\u2012": "-",  # FIGURE DASH
    "\u2013": "-",  # EN DASH
    "\u2014": "-",  # EM DASH
    "\u2015": "-",  # HORIZONTAL BAR
    "\u2212": "-",  # MINUS SIGN
    "\u00ad": "",  # SOFT HYPHEN (invisible)
    # Ellipsis, bullets and other punctuation.
    "\u2026": "...",  # HORIZONTAL ELLIPSIS
    "\u2022": "-",  # BULLET
    "\u2023": "-",  # TRIANGULAR BULLET
    "\u2043": "-",  # HYPHEN BULLET
    "\u00b7": "-",  # MIDDLE DOT
    "\u2044": "/",  # FRACTION SLASH
    "\u00a6": "|",  # BROKEN BAR
    "\u02c6": "^",  # MODIFIER LETTER CIRCUMFLEX ACCENT
    "\u02dc": "~",  # SMALL TILDE
    "\u00d7": "x",  # MULTIPLICATION SIGN
    "\u2024": ".",  # ONE DOT LEADER
    "\u066a": "%",  # ARABIC PERCENT SIGN
    # Spaces: no-break and the typographic widths become a space; zero-width ones go.
    "\t": " ",  # CHARACTER TABULATION (no GSM-7 tab)
    "\u00a0": " ",  # NO-BREAK SPACE
    "\u2000": " ",  # EN QUAD
    "\u2001": " ",  # EM QUAD
    "\u2002": " ",  # EN SPACE
    "\u2003": " ",  # EM SPACE
    "\u2004": " ",  # THREE-PER-EM SPACE
    "\u2005": " ",  # FOUR-PER-EM SPACE
    "\u2006": " ",  # SIX-PER-EM SPACE
    "\u2007": " ",  # FIGURE SPACE
    "\u2008": " ",  # PUNCTUATION SPACE
    "\u2009": " ",  # THIN SPACE
    "\u200a": " ",  # HAIR SPACE
    "\u202f": " ",  # NARROW NO-BREAK SPACE
    "\u205f": " ",  # MEDIUM MATHEMATICAL SPACE
    "\u3000": " ",  # IDEOGRAPHIC SPACE
    "\u200b": "",  # ZERO WIDTH SPACE
    "\u200c": "",  # ZERO WIDTH NON-JOINER
    "\u200d": "",  # ZERO WIDTH JOINER
    "\u2060": "",  # WORD JOINER
    "\ufeff": "",  # ZERO WIDTH NO-BREAK SPACE (a byte order mark pasted along)
    # Line and paragraph separators (a pasted paragraph break).
    "\u2028": "\n",  # LINE SEPARATOR
    "\u2029": "\n",  # PARAGRAPH SEPARATOR
}

_TABLE = str.maketrans(LOOKALIKES)


def encode(body: str) -> str:
    """``body`` with its look-alikes replaced when that makes it GSM-7; else ``body``."""
    if segments.GSM7.issuperset(body):
        return body  # the common case: nothing to replace
    replaced = body.translate(_TABLE)
    return replaced if segments.GSM7.issuperset(replaced) else body
