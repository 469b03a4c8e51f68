"""``python -m orderguard.providers.wechatpay.sandbox [--print-config]``."""

from __future__ import annotations

import argparse

from orderguard.providers.wallet_faults import FAULTS_HELP, load_profile
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
    parser.add_argument("--faults", default="none", help=FAULTS_HELP)
    parser.add_argument("--seed", type=int, default=0, help="seeds every fault stream")
    args = parser.parse_args(argv)
    if args.print_config:
        identity = load_identity(args.data_dir)
        base_url = f"http://{args.host}:{args.port}"
        for name, value in identity.config(base_url, args.notify_url).items():
            print(f"{name}={value}")
        return
    try:
        load_profile(args.faults)
    except ValueError as exc:
        parser.error(f"--faults: {exc}")
    serve(args.host, args.port, args.data_dir, faults=args.faults, seed=args.seed)


if __name__ == "__main__":
    main()
