"""WeChat Pay (API v3): Native (QR code) and H5 payments, the active query, close, refunds."""
