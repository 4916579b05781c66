"""``python -m simulator``: serve the AiAccount simulator over HTTP (docs/aiaccount-api.md §8)."""
from __future__ import annotations

import argparse
import logging
import signal
import socket
import struct
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server

from simulator.app import create_app
from simulator.company import SeedError
from simulator.context import RESET_ENVIRON_KEY
from simulator.seed import load_seed_file


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler, plus the "reset" fault: a TCP RST instead of any answer."""

    _reset = False

    def connection_dropped(self, error: BaseException,
                           environ: dict[str, Any] | None = None) -> None:
        if environ is not None and environ.get(RESET_ENVIRON_KEY):
            self._reset = True
            self.close_connection = True

    def finish(self) -> None:
        super().finish()
        if self._reset:
            # SO_LINGER 0: closing sends RST, not FIN. rfile/wfile are closed, so this is the
            # last reference and the close is real.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--db", type=Path, default=Path("var/simulator.sqlite"))
    parser.add_argument("--seed", type=Path, help="JSON file of companies to create/replace")
    parser.add_argument("--control", action="store_true", help="enable /_control (tests, demo)")
    parser.add_argument("--max-upload-mb", type=float, default=10)
    parser.add_argument("--public-url", help="base URL of Import History links")
    return parser.parse_args(argv)


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        seeds = load_seed_file(args.seed) if args.seed else []
    except SeedError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    app = create_app(args.db, control_surface=args.control, max_upload_mb=args.max_upload_mb,
                     public_url=args.public_url, seeds=seeds)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=_Handler)
    signal.signal(signal.SIGTERM, _stop)
    logging.getLogger("simulator").info(
        "AiAccount simulator on http://%s:%s (db %s, control %s)",
        args.host, server.port, args.db, "on" if args.control else "off")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logging.getLogger("simulator").info("stopping")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
