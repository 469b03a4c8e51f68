"""A wallet's code to scan, drawn on the server as inline SVG: no image request, no remote
QR service, nothing the page's Content-Security-Policy would have to allow."""

from __future__ import annotations

import segno

#: Pixels per module: a WeChat Pay code (version 3, 37 modules with its quiet zone) is
#: 222 pixels wide, readable by a phone from a laptop's screen.
SCALE = 6
#: Modules of white around the code, as the QR standard asks.
QUIET_ZONE = 4


def qr_svg(text: str) -> str:
    """``text`` as an ``<svg>`` QR code (error correction M) made of two paths only:
    ``text`` itself is not written into it, so the markup needs no escaping."""
    code = segno.make_qr(text, error="m", boost_error=False)
    svg: str = code.svg_inline(
        scale=SCALE,
        border=QUIET_ZONE,
        dark="#000",
        light="#fff",
        svgclass="qr-code",
        lineclass=None,
    )
    return svg
