"""The operator's command line: python -m hms_bus COMMAND.

Commands work against --url, else HMS_BUS_URL, else nats://127.0.0.1:4222.

examples:
  python -m hms_bus server                    # a local JetStream server (make nats)
  python -m hms_bus tail 'payments.*'         # print events as they arrive
  python -m hms_bus publish alerts.test '{"msg": "hello from ops"}'
  python -m hms_bus replay 'payments.*' --since 1h --limit 20

Events print as one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from datetime import timedelta

from .errors import HmsBusError
from .redact import redact_url, scrub

DEFAULT_URL = "nats://127.0.0.1:4222"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _when(text: str) -> str | timedelta:
    """``90s``, ``15m``, ``2h``, ``1d`` (that long ago) or ISO-8601 text."""
    m = _DURATION.match(text.strip())
    if m:
        return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    return text


def _bus(args: argparse.Namespace):
    from .bus import Bus, _from_target

    url = args.url or os.environ.get("HMS_BUS_URL") or DEFAULT_URL
    bus = _from_target(url)
    assert isinstance(bus, Bus)
    return bus


def _print(ev) -> None:
    print(json.dumps(ev.to_dict(), ensure_ascii=False), flush=True)


def cmd_server(args: argparse.Namespace) -> int:
    from .server import NatsServer, _accepts

    if args.port and _accepts(args.port):
        print(
            f"port {args.port} is taken (a server may be running already); "
            f"use --port 0 for a free one",
            file=sys.stderr,
        )
        return 1
    # SIGTERM (kill, systemd, a container stop) ends the loop as Ctrl-C does,
    # so the server stops and a temporary store is removed on every exit path.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    server = None
    try:
        server = NatsServer(port=args.port or None, store=args.store)
        with server:
            print(f"nats-server with JetStream on {server.url} (store {server.store})")
            print(f"  export HMS_BUS_URL={server.url}")
            print("Ctrl-C stops it.", flush=True)
            while server.running:
                time.sleep(0.5)
            code = server.proc.returncode if server.proc else None
            print(f"error: nats-server stopped by itself (exit code {code})", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None:
            server.stop()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_publish(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.json) if args.json is not None else None
    except ValueError as exc:
        print(
            f"JSON {args.json!r} is not valid ({exc}); e.g. '{{\"amount\": 1000}}'", file=sys.stderr
        )
        return 2
    with _bus(args) as bus:
        ev = bus.publish(args.topic, data, src=args.src)
        bus.flush(30)
    _print(ev)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    with _bus(args) as bus:
        since = _when(args.since) if args.since else None
        until = _when(args.until) if args.until else None
        events = bus.replay(args.pattern, since=since, until=until)
        for ev in events[-args.limit :] if args.limit else events:
            _print(ev)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    done = threading.Event()
    seen = 0

    def show(ev) -> None:
        nonlocal seen
        _print(ev)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    with _bus(args) as bus:
        deliver = _when(args.since) if args.since else "new"
        bus.subscribe(args.pattern, show, deliver=deliver, name="tail")
        where = redact_url(bus.backend.url)
        print(f"# tailing {args.pattern!r} on {where}; Ctrl-C stops", file=sys.stderr)
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    summary, _, details = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m hms_bus",
        description=summary,
        epilog=details,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help=f"bus URL (default: $HMS_BUS_URL or {DEFAULT_URL})")
    cmds = parser.add_subparsers(dest="command", required=True)

    p = cmds.add_parser("server", help="run a local nats-server with JetStream")
    p.add_argument("--port", type=int, default=4222, help="client port; 0 for a free one")
    p.add_argument("--store", help="JetStream store directory (default: a temporary one)")
    p.set_defaults(fn=cmd_server)

    p = cmds.add_parser("tail", help="print events matching PATTERN as they arrive")
    p.add_argument("pattern")
    p.add_argument("--since", help="start with kept events from then: 15m, 2h, or ISO time")
    p.add_argument("--count", type=int, default=0, help="stop after this many events")
    p.set_defaults(fn=cmd_tail)

    p = cmds.add_parser("publish", help="publish one event and wait for it to be stored")
    p.add_argument("topic")
    p.add_argument("json", nargs="?", help="the event data as JSON")
    p.add_argument("--src", default="hms-cli", help="who sends it (default hms-cli)")
    p.set_defaults(fn=cmd_publish)

    p = cmds.add_parser("replay", help="print kept events matching PATTERN")
    p.add_argument("pattern", nargs="?", default=">")
    p.add_argument("--since", help="15m, 2h, 1d or ISO time")
    p.add_argument("--until", help="15m, 2h, 1d or ISO time")
    p.add_argument("--limit", type=int, default=0, help="only the last N")
    p.set_defaults(fn=cmd_replay)

    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (HmsBusError, ValueError, TypeError, ModuleNotFoundError, OSError) as exc:
        print(f"error: {scrub(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
