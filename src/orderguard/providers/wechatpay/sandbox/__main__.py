"""``python -m orderguard.providers.wechatpay.sandbox [--print-config]``."""

from __future__ import annotations

import argparse

from orderguard.providers.wechatpay.sandbox.identity import load_identity
from orderguard.providers.wechatpay.sandbox.server import serve

#: Where orderguard receives WeChat Pay notifications when served with its defaults.
DEFAULT_NOTIFY_URL = "http://127.0.0.1:8000/v1/webhooks/wechatpay"


def main(argv: list[str] | None = None) -> None:
    """Serve the sandbox, or print the settings that point orderguard at it."""
    parser = argparse.ArgumentParser(description="WeChat Pay API v3 sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--data-dir", default="./wechatpay-sandbox")
    parser.add_argument("--notify-url", default=DEFAULT_NOTIFY_URL)
    parser.add_argument("--print-config", action="store_true")
    args = parser.parse_args(argv)
    if args.print_config:
        identity = load_identity(args.data_dir)
        base_url = f"http://{args.host}:{args.port}"
        for name, value in identity.config(base_url, args.notify_url).items():
            print(f"{name}={value}")
        return
    serve(args.host, args.port, args.data_dir)


if __name__ == "__main__":
    main()
