"""The operator's command line: python -m hms_bus COMMAND.

Commands work against --url (before or after the command), else HMS_BUS_URL,
else nats://127.0.0.1:4222. replay and tail only read: they never create or
change a stream.

examples:
  python -m hms_bus server                    # a local JetStream server (make nats)
  python -m hms_bus kafka-mock                # a throw-away Kafka (librdkafka's mock cluster)
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
from typing import NoReturn

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


def _bus(args: argparse.Namespace, *, readonly: bool = False):
    from .bus import Bus, _from_target

    url = getattr(args, "url", None) or os.environ.get("HMS_BUS_URL") or DEFAULT_URL
    if readonly and url.startswith(("nats://", "tls://", "kafka://")):
        from urllib.parse import parse_qsl, urlencode

        from .backends import kafka_backend, nats_backend

        # replay and tail only read: whatever the URL says, they never create or change
        # a stream or topic (readonly=0 or update=1 in HMS_BUS_URL are for publishers).
        base, _, query = url.partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k not in ("readonly", "update")]
        if len(kept) != len(pairs):
            url = base + ("?" + urlencode(kept, safe=",:/@*>") if kept else "")
        make = kafka_backend if url.startswith("kafka://") else nats_backend
        return Bus(make(url, readonly=True))
    bus = _from_target(url)
    assert isinstance(bus, Bus)
    return bus


def _count(text: str) -> int:
    """An int >= 0, for --limit and --count."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (0 to 65535; 0: a free one)")
    return value


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


def cmd_kafka_mock(args: argparse.Namespace) -> int:
    try:
        import confluent_kafka  # noqa: F401 (the mock loads it only when started)

        from .backends.kafka.mock import MockKafkaCluster
    except ModuleNotFoundError as exc:
        print(
            f"error: {exc}; install confluent-kafka with pip install 'confluent-kafka>=2.16' "
            f"(in a clone of the kit: pip install -e '.[kafka]')",
            file=sys.stderr,
        )
        return 1
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with MockKafkaCluster(args.brokers) as cluster:
            print(f"librdkafka mock Kafka cluster, {args.brokers} broker(s), on {cluster.url}")
            print(f"  export HMS_BUS_URL={cluster.url}")
            print(
                "It keeps nothing on disk and stops with this process; Ctrl-C stops it.", flush=True
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0


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
    with _bus(args, readonly=True) as bus:
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
        if done.is_set():
            return  # --count reached: events already on their way are not printed
        _print(ev)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    with _bus(args, readonly=True) as bus:
        deliver = _when(args.since) if args.since else "new"
        sub = bus.subscribe(args.pattern, show, deliver=deliver, name="tail")
        where = redact_url(bus.backend.url)
        print(f"# tailing {args.pattern!r} on {where}; Ctrl-C stops", file=sys.stderr)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            sub.unsubscribe()
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage mistakes on one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (python -m hms_bus --help shows the commands)\n")


def main(argv: list[str] | None = None) -> int:
    summary, _, details = __doc__.partition("\n\n")
    parser = _Parser(
        prog="python -m hms_bus",
        description=summary,
        epilog=details,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    url_help = f"bus URL (default: $HMS_BUS_URL or {DEFAULT_URL})"
    parser.add_argument("--url", help=url_help)
    cmds = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help: str, fn: object) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=help)
        if name not in ("server", "kafka-mock"):  # --url after the command too; SUPPRESS
            # keeps one given before
            p.add_argument("--url", default=argparse.SUPPRESS, help=url_help)
        p.set_defaults(fn=fn)
        return p

    p = command("server", "run a local nats-server with JetStream", cmd_server)
    p.add_argument("--port", type=_port, default=4222, help="client port; 0 for a free one")
    p.add_argument("--store", help="JetStream store directory (default: a temporary one)")

    p = command("kafka-mock", "run librdkafka's mock Kafka cluster (for trying)", cmd_kafka_mock)
    p.add_argument("--brokers", type=int, default=3, help="how many brokers (default 3)")

    p = command("tail", "print events matching PATTERN as they arrive", cmd_tail)
    p.add_argument("pattern")
    p.add_argument("--since", help="start with kept events from then: 15m, 2h, or ISO time")
    p.add_argument("--count", type=_count, default=0, help="stop after this many events")

    p = command("publish", "publish one event and wait for it to be stored", cmd_publish)
    p.add_argument("topic")
    p.add_argument("json", nargs="?", help="the event data as JSON")
    p.add_argument("--src", default="hms-cli", help="who sends it (default hms-cli)")

    p = command("replay", "print kept events matching PATTERN", cmd_replay)
    p.add_argument("pattern", nargs="?", default=">")
    p.add_argument("--since", help="15m, 2h, 1d or ISO time")
    p.add_argument("--until", help="15m, 2h, 1d or ISO time")
    p.add_argument("--limit", type=_count, default=0, help="only the last N (0: all)")

    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (HmsBusError, ValueError, TypeError, ModuleNotFoundError, TimeoutError, OSError) as exc:
        print(f"error: {_one_line(scrub(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
