"""Running the sandbox: on a free loopback port in a thread (tests, development) or as a
process (:func:`serve`, :func:`main`: ``python -m orderguard.providers.alipay.sandbox``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from orderguard.providers.alipay.sandbox.app import create_app
from orderguard.providers.alipay.sandbox.config import SandboxConfig, load_keys, settings_for
from orderguard.providers.serving import serve_forever, serve_in_thread
from orderguard.providers.wallet_faults import FAULTS_HELP, load_profile


@contextmanager
def run_sandbox(config: SandboxConfig) -> Iterator[str]:
    """A sandbox on a free 127.0.0.1 port for the duration of the block; yields its base URL
    (the gateway is ``{url}/gateway.do``)."""
    with serve_in_thread(create_app(config), "alipay") as base_url:
        yield base_url


def serve(
    host: str,
    port: int,
    data_dir: str,
    app_public_key: str | None = None,
    *,
    faults: str = "none",
    seed: int = 0,
) -> None:
    """Serve the sandbox until interrupted; ``app_public_key`` (PEM, base64 or a file) when
    the app signs with a key of its own rather than the data directory's test app key;
    ``faults``: a fault profile's name or TOML file, its dice seeded with ``seed``."""
    config = SandboxConfig(
        data_dir=data_dir,
        app_public_key=app_public_key,
        faults=load_profile(faults),
        seed=seed,
    )
    serve_forever(create_app(config), host, port)


def print_config(host: str, port: int, data_dir: str) -> str:
    """The ``ORDERGUARD_ALIPAY_*`` lines pointing orderguard at a sandbox served so
    (the keys are made now if the data directory has none)."""
    config = SandboxConfig(data_dir=data_dir)
    found = settings_for(config, load_keys(config), f"http://{host}:{port}")
    return "\n".join(f"{name}={value}" for name, value in found.items())


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m orderguard.providers.alipay.sandbox [--print-config]``."""
    parser = argparse.ArgumentParser(description="An Alipay-compatible sandbox.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--data-dir", default="./orderguard-alipay-sandbox")
    parser.add_argument("--app-public-key", help="the app's public key (PEM, base64 or file)")
    parser.add_argument("--print-config", action="store_true", help="print the settings, exit")
    parser.add_argument("--faults", default="none", help=FAULTS_HELP)
    parser.add_argument("--seed", type=int, default=0, help="seeds every fault stream")
    args = parser.parse_args(argv)
    if args.print_config:
        print(print_config(args.host, args.port, args.data_dir))
        return
    try:
        load_profile(args.faults)
    except ValueError as exc:
        parser.error(f"--faults: {exc}")
    serve(
        args.host, args.port, args.data_dir, args.app_public_key, faults=args.faults, seed=args.seed
    )
