"""librdkafka's mock Kafka cluster, driven from Python: for tests, notebooks and demos.

No Kafka broker is needed to try the Kafka backend. The librdkafka copy
inside the ``confluent-kafka`` wheel carries a protocol-level mock cluster:
real TCP listeners on 127.0.0.1 that any Kafka client can reach. confluent-
kafka has no binding for it, so this module calls its C functions through
``ctypes``::

    from hms_bus.backends.kafka.mock import MockKafkaCluster
    with MockKafkaCluster(brokers=3) as cluster:
        bus = hms_bus.use(cluster.url)        # kafka://127.0.0.1:38073,...
        cluster.broker_down()                 # every broker away...
        cluster.broker_up()                   # ...and back

The cluster lives inside the Python process that made it: it stops with
:meth:`MockKafkaCluster.close` or when that process ends. ``python -m hms_bus
kafka-mock`` runs one in a process of its own and prints its URL.

What the mock does not do like a real broker (all seen with librdkafka 2.16):
its admin API (create topics, configs) waits for a controller that does not
exist, so topics are auto-created (4 partitions) and retention cannot be set;
``offsets_for_times`` answers -1; a re-sent batch of a non-transactional
idempotent producer is stored twice; and it elects no new leader when a
broker goes down. The backend copes with each (see the package docstring).

The mock API is marked experimental by librdkafka, with no ABI promise; a
missing function raises :class:`~hms_bus.HmsBusError` naming it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os

from ...errors import HmsBusError

__all__ = ["MockKafkaCluster", "librdkafka_path", "ALL_BROKERS", "PRODUCE", "FETCH"]

ALL_BROKERS = -1
"""Broker id meaning "every broker" in :meth:`MockKafkaCluster.broker_down` and ``broker_up``."""

PRODUCE = 0
"""Kafka's ApiKey of a Produce request (for :meth:`MockKafkaCluster.push_errors`)."""

FETCH = 1
"""Kafka's ApiKey of a Fetch request."""

_VP, _INT, _STR = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
_SIGNATURES = {
    "rd_kafka_conf_new": (_VP, []),
    "rd_kafka_conf_set": (_INT, [_VP, _STR, _STR, _STR, ctypes.c_size_t]),
    "rd_kafka_new": (_VP, [_INT, _VP, _STR, ctypes.c_size_t]),
    "rd_kafka_destroy": (None, [_VP]),
    "rd_kafka_mock_cluster_new": (_VP, [_VP, _INT]),
    "rd_kafka_mock_cluster_destroy": (None, [_VP]),
    "rd_kafka_mock_cluster_bootstraps": (_STR, [_VP]),
    "rd_kafka_mock_broker_set_down": (_INT, [_VP, ctypes.c_int32]),
    "rd_kafka_mock_broker_set_up": (_INT, [_VP, ctypes.c_int32]),
    "rd_kafka_mock_broker_set_rtt": (_INT, [_VP, ctypes.c_int32, _INT]),
    "rd_kafka_mock_topic_create": (_INT, [_VP, _STR, _INT, _INT]),
    "rd_kafka_mock_topic_delete": (_INT, [_VP, _STR]),
    "rd_kafka_mock_partition_delete_records": (
        _INT,
        [_VP, _STR, ctypes.c_int32, ctypes.c_int64],
    ),
    "rd_kafka_mock_group_initial_rebalance_delay_ms": (None, [_VP, ctypes.c_int32]),
    "rd_kafka_mock_push_request_errors_array": (None, [_VP, ctypes.c_int16, ctypes.c_size_t, _VP]),
    # variadic: (cluster, broker id, ApiKey, count, error1, rtt1, error2, rtt2, ...)
    "rd_kafka_mock_broker_push_request_error_rtts": (_INT, None),
    "rd_kafka_err2name": (_STR, [_INT]),
}
_lib: ctypes.CDLL | None = None


def librdkafka_path() -> str:
    """The librdkafka shared library that confluent-kafka uses.

    The PyPI wheels bundle one next to the package; a build from source (or
    conda-forge's package) links a separate one, found by its usual name.
    """
    import confluent_kafka

    pkg = os.path.dirname(confluent_kafka.__file__)
    found = sorted(glob.glob(os.path.join(pkg + ".libs", "librdkafka*.so*")))  # manylinux
    found += sorted(glob.glob(os.path.join(pkg, ".dylibs", "librdkafka*.dylib")))  # macOS
    if found:
        return found[0]
    system = ctypes.util.find_library("rdkafka")
    if system:
        return system
    raise HmsBusError(
        f"no librdkafka found next to confluent_kafka ({pkg}) or on the library path; "
        f"install the wheel with pip install 'confluent-kafka>=2.16'"
    )


def _load() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        path = librdkafka_path()
        lib = ctypes.CDLL(path)
        for name, (result, args) in _SIGNATURES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                raise HmsBusError(
                    f"{path} has no {name}(); the mock cluster needs librdkafka >= 2.16 as "
                    f"bundled in the confluent-kafka wheel (pip install 'confluent-kafka>=2.16')"
                ) from None
            fn.restype = result
            if args is not None:
                fn.argtypes = args
        _lib = lib
    return _lib


class MockKafkaCluster:
    """A mock Kafka cluster of ``brokers`` brokers on 127.0.0.1, on free ports.

    Starting one takes about a millisecond. Clients reach it through
    :attr:`bootstrap` (``host:port,...``) or :attr:`url` (``kafka://...``).

    :param brokers: how many brokers (ids 1 to ``brokers``).
    """

    def __init__(self, brokers: int = 3) -> None:
        if isinstance(brokers, bool) or not isinstance(brokers, int) or not 1 <= brokers <= 16:
            raise ValueError(f"brokers must be an int from 1 to 16, such as 3, got {brokers!r}")
        lib = self._lib = _load()
        self._handle = self._cluster = None
        conf = lib.rd_kafka_conf_new()
        err = ctypes.create_string_buffer(512)
        # The handle that carries the cluster never connects anywhere; keep it quiet.
        for key, value in (("log_level", "3"), ("bootstrap.servers", "")):
            lib.rd_kafka_conf_set(conf, key.encode(), value.encode(), err, len(err))
        self._handle = lib.rd_kafka_new(0, conf, err, len(err))  # 0: a producer handle
        if not self._handle:
            raise HmsBusError(f"librdkafka could not make a client handle: {err.value.decode()}")
        self._cluster = lib.rd_kafka_mock_cluster_new(self._handle, brokers)
        if not self._cluster:
            self.close()
            raise HmsBusError(f"librdkafka could not start a mock cluster of {brokers} brokers")
        self.brokers = brokers
        self.bootstrap: str = lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()
        """The brokers' ``host:port`` list, for ``bootstrap.servers``."""
        # Consumer groups would otherwise wait 3 s for their first join.
        lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._cluster, 0)

    @property
    def url(self) -> str:
        """``kafka://<bootstrap>``, what ``hms_bus.use`` and ``HMS_BUS_URL`` take."""
        return f"kafka://{self.bootstrap}"

    @property
    def running(self) -> bool:
        return self._cluster is not None

    def _live(self) -> ctypes.c_void_p:
        if self._cluster is None:
            raise HmsBusError(f"{self!r} is closed; start a new MockKafkaCluster()")
        return self._cluster

    def _check(self, code: int, what: str) -> None:
        if code:
            raise HmsBusError(f"mock cluster: {what} failed: {self._lib.rd_kafka_err2name(code)}")

    def broker_down(self, broker: int = ALL_BROKERS) -> None:
        """Take broker ``broker`` (1..N; default all) away: connections drop and are refused."""
        self._check(self._lib.rd_kafka_mock_broker_set_down(self._live(), broker), "broker_down")

    def broker_up(self, broker: int = ALL_BROKERS) -> None:
        """Bring broker ``broker`` (default all) back."""
        self._check(self._lib.rd_kafka_mock_broker_set_up(self._live(), broker), "broker_up")

    def set_rtt(self, broker: int, ms: int) -> None:
        """Delay every answer of ``broker`` by ``ms`` milliseconds."""
        self._check(self._lib.rd_kafka_mock_broker_set_rtt(self._live(), broker, ms), "set_rtt")

    def create_topic(self, name: str, partitions: int = 1, replication: int = 1) -> None:
        """Create topic ``name``, as another application would (no retention settings)."""
        code = self._lib.rd_kafka_mock_topic_create(
            self._live(), name.encode(), partitions, replication
        )
        self._check(code, f"create_topic({name!r})")

    def delete_topic(self, name: str) -> None:
        self._check(self._lib.rd_kafka_mock_topic_delete(self._live(), name.encode()), "delete")

    def delete_records(self, topic: str, partition: int, before: int) -> None:
        """Drop the records of ``topic[partition]`` below offset ``before``, as retention does."""
        code = self._lib.rd_kafka_mock_partition_delete_records(
            self._live(), topic.encode(), partition, before
        )
        self._check(code, f"delete_records({topic!r}, {partition}, {before})")

    def push_errors(self, api_key: int, *errors: int) -> None:
        """Answer the next ``len(errors)`` requests of ``api_key`` with these error codes."""
        codes = (ctypes.c_int * len(errors))(*errors)
        self._lib.rd_kafka_mock_push_request_errors_array(
            self._live(), api_key, len(errors), ctypes.cast(codes, ctypes.c_void_p)
        )

    def delay_replies(self, broker: int, api_key: int, *delays_ms: int) -> None:
        """Answer ``broker``'s next ``api_key`` requests after these delays (ms), without error.

        A delay longer than a client's ``socket.timeout.ms`` makes it re-send.
        """
        pairs: list[ctypes.c_int] = []
        for ms in delays_ms:
            pairs += [ctypes.c_int(0), ctypes.c_int(ms)]
        code = self._lib.rd_kafka_mock_broker_push_request_error_rtts(
            ctypes.c_void_p(self._live()),
            ctypes.c_int32(broker),
            ctypes.c_int16(api_key),
            ctypes.c_size_t(len(delays_ms)),
            *pairs,
        )
        self._check(code, "delay_replies")

    def close(self) -> None:
        """Stop the cluster; clients connected to it see their brokers go away."""
        if self._cluster is not None:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._handle is not None:
            self._lib.rd_kafka_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> MockKafkaCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = self.bootstrap if self.running else "closed"
        return f"<MockKafkaCluster {self.brokers} brokers {state}>"
