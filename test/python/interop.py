#!/usr/bin/env python3
"""The Python interop program.

Drives the official RocketMQ 5 Python client (PyPI rocketmq-python-client,
pinned in requirements.txt) through one scenario against an endpoint and
prints one JSON object per line for each event:

    python interop.py SCENARIO --endpoint 127.0.0.1:8081 --topic T --group G
        [--count N] [--groups K] [--delay-ms D] [--consumer simple|push]
        [--linger-ms L] [--timeout-ms T] [--invisible-ms I]

Scenarios: normal, fifo, delay (with --recall 1, one more delay message is
sent first and recalled), transaction, filter, invisible (see their methods).
The simple consumer receives
with an invisible duration of I ms (default 30000; this client takes whole
seconds) and acks each message. The client runs with its
default settings (plaintext). Errors go to stderr with a non-zero exit.
"""

import argparse
import json
import os
import sys
import threading
import time
import traceback

from rocketmq import (ClientConfiguration, ConsumeResult, Credentials,
                      FilterExpression, Message, MessageListener, Producer,
                      PushConsumer, SimpleConsumer, TransactionChecker,
                      TransactionResolution)
from rocketmq.grpc_protocol import FilterType

_out_lock = threading.Lock()


def emit(event, **fields):
    line = json.dumps({"event": event, **fields}, ensure_ascii=False)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def now_ms():
    return int(time.time() * 1000)


class Run:
    def __init__(self, args):
        self.args = args
        self.topic = args.topic
        self.group = args.group
        self.count = args.count
        self.linger = args.linger_ms / 1000.0
        self.deadline = time.monotonic() + args.timeout_ms / 1000.0
        # The client takes the invisible duration in whole seconds.
        self.invisible_s = max(1, args.invisible_ms // 1000)
        self.received = set()
        self.cond = threading.Condition()
        # Default settings: no credentials, no TLS (the constructors' default).
        self.config = ClientConfiguration(args.endpoint, Credentials())

    def on_received(self, msg, consumer):
        fields = {
            "id": msg.message_id,
            "consumer": consumer,
            "topic": msg.topic,
            "body": msg.body.decode("utf-8"),
            "tag": msg.tag,
            "keys": sorted(msg.keys),
            "props": dict(sorted(msg.properties.items())),
            "group": msg.message_group,
            "attempt": msg.delivery_attempt,
            "born": msg.born_timestamp,
            "ts": now_ms(),
        }
        if "seq" in msg.properties:
            fields["seq"] = int(msg.properties["seq"])
        if msg.delivery_timestamp:
            fields["deliver_at"] = msg.delivery_timestamp
        emit("received", **fields)
        with self.cond:
            self.received.add(msg.message_id)
            self.cond.notify_all()

    # ---- consumers ----

    def start_consumer(self):
        subscription = {self.topic: FilterExpression()}
        if self.args.consumer == "push":
            run = self

            class Listener(MessageListener):
                def consume(self, message):
                    run.on_received(message, "push")
                    return ConsumeResult.SUCCESS

            c = PushConsumer(self.config, self.group, Listener(), subscription)
            c.startup()

            def await_and_close(want):
                try:
                    with self.cond:
                        while len(self.received) < want:
                            left = self.deadline - time.monotonic()
                            if left <= 0:
                                raise RuntimeError(
                                    f"received {len(self.received)} of {want} messages before the timeout")
                            self.cond.wait(left)
                    # Linger: a duplicate or an unexpected message would show up now.
                    until = time.monotonic() + self.linger
                    with self.cond:
                        while time.monotonic() < until:
                            self.cond.wait(until - time.monotonic())
                finally:
                    c.shutdown()
            return await_and_close

        if self.args.consumer != "simple":
            raise ValueError(f"unknown consumer {self.args.consumer}")
        c = SimpleConsumer(self.config, self.group, subscription, await_duration=2)
        c.startup()

        def await_and_close(want):
            try:
                linger_until = None
                while linger_until is None or time.monotonic() < linger_until:
                    if linger_until is None and time.monotonic() > self.deadline:
                        raise RuntimeError(f"received {len(self.received)} of {want} messages before the timeout")
                    for msg in c.receive(16, self.invisible_s):
                        self.on_received(msg, "simple")
                        c.ack(msg)
                        emit("acked", id=msg.message_id)
                    if linger_until is None and len(self.received) >= want:
                        linger_until = time.monotonic() + self.linger
            finally:
                c.shutdown()
        return await_and_close

    def producer(self, checker=None):
        p = Producer(self.config, (self.topic,), checker)
        p.startup()
        return p

    # ---- scenarios ----

    def normal(self):
        await_and_close = self.start_consumer()
        p = self.producer()
        try:
            for i in range(self.count):
                tag = "TagA" if i % 2 == 0 else "TagB"
                body = f"normal-python-{i}"
                keys = [f"k-{i}", f"order-{i // 10}"]
                props = {"seq": str(i), "lang": "python", "unicode": f"ünï-{i}"}
                m = Message()
                m.topic = self.topic
                m.body = body.encode("utf-8")
                m.tag = tag
                for k in keys:
                    m.keys = k
                for k, v in props.items():
                    m.add_property(k, v)
                r = p.send(m)
                emit("sent", id=r.message_id, seq=i, tag=tag, keys=keys, body=body, props=dict(sorted(props.items())))
        finally:
            p.shutdown()
        await_and_close(self.count)

    def fifo(self):
        await_and_close = self.start_consumer()
        p = self.producer()
        try:
            for i in range(self.count):
                mg = f"mg-{i % self.args.groups}"
                seq = i // self.args.groups
                body = f"fifo-python-{mg}-{seq}"
                m = Message()
                m.topic = self.topic
                m.body = body.encode("utf-8")
                m.tag = "fifo"
                m.keys = f"k-{i}"
                m.message_group = mg
                m.add_property("seq", str(seq))
                r = p.send(m)
                emit("sent", id=r.message_id, group=mg, seq=seq, body=body)
        finally:
            p.shutdown()
        await_and_close(self.count)

    def delay(self):
        await_and_close = self.start_consumer()
        p = self.producer()
        try:
            if self.args.recall == 1:
                # Due before the others: had the recall not taken, it would
                # arrive before them.
                body = "recall-python"
                m = Message()
                m.topic = self.topic
                m.body = body.encode("utf-8")
                m.tag = "delay"
                m.keys = "k-recall"
                m.delivery_timestamp = int(time.time()) + -(-self.args.delay_ms // 1000)
                r = p.send(m)
                recalled = p.recall_message(self.topic, r.recall_handle)
                emit("recalled", id=r.message_id, answer=recalled, body=body)
            for i in range(self.count):
                body = f"delay-python-{i}"
                # On send this client takes the delivery time in whole
                # seconds since the epoch (its delay example does
                # int(time.time()) + 10) and puts it into the protobuf
                # Timestamp's seconds; received messages report it in
                # milliseconds.
                at_s = int(time.time()) + -(-self.args.delay_ms // 1000)
                at = at_s * 1000
                m = Message()
                m.topic = self.topic
                m.body = body.encode("utf-8")
                m.tag = "delay"
                m.keys = f"k-{i}"
                m.delivery_timestamp = at_s
                m.add_property("seq", str(i))
                r = p.send(m)
                emit("sent", id=r.message_id, seq=i, deliver_at=at, body=body)
        finally:
            p.shutdown()
        await_and_close(self.count)

    def filter(self):
        """Six messages, message i tagged TagA, TagB or TagC (i % 3) with the
        properties color (red for an even i, else blue) and n (i); one simple
        consumer (group G-tag) subscribes with the tag expression
        "TagA||TagC", another (group G-sql) with the SQL92 expression
        "color = 'red' AND n >= 2". Each receives until it has --tag-want and
        --sql-want messages, then both linger."""
        want = {"tag": self.args.tag_want, "sql": self.args.sql_want}
        consumers = {
            "tag": SimpleConsumer(self.config, self.group + "-tag",
                                  {self.topic: FilterExpression("TagA||TagC")}, await_duration=1),
            "sql": SimpleConsumer(self.config, self.group + "-sql",
                                  {self.topic: FilterExpression("color = 'red' AND n >= 2", FilterType.SQL)},
                                  await_duration=1),
        }
        for c in consumers.values():
            c.startup()
        try:
            p = self.producer()
            try:
                for i in range(6):
                    tag = "Tag" + "ABC"[i % 3]
                    body = f"filter-python-{i}"
                    props = {"color": "red" if i % 2 == 0 else "blue", "n": str(i), "seq": str(i)}
                    m = Message()
                    m.topic = self.topic
                    m.body = body.encode("utf-8")
                    m.tag = tag
                    m.keys = f"k-{i}"
                    for k, v in props.items():
                        m.add_property(k, v)
                    r = p.send(m)
                    emit("sent", id=r.message_id, seq=i, tag=tag, body=body, props=dict(sorted(props.items())))
            finally:
                p.shutdown()
            got = {"tag": set(), "sql": set()}
            linger_until = None
            while linger_until is None or time.monotonic() < linger_until:
                for name, c in consumers.items():
                    for msg in c.receive(16, self.invisible_s):
                        self.on_received(msg, name)
                        got[name].add(msg.message_id)
                        c.ack(msg)
                        emit("acked", id=msg.message_id)
                if linger_until is None:
                    if all(len(got[k]) >= want[k] for k in want):
                        linger_until = time.monotonic() + self.linger
                    elif time.monotonic() > self.deadline:
                        raise RuntimeError(f"received {len(got['tag'])} of {want['tag']} (tag) and "
                                           f"{len(got['sql'])} of {want['sql']} (sql) before the timeout")
        finally:
            for c in consumers.values():
                c.shutdown()

    def invisible(self):
        """Two messages, "extend" and "shorten". A simple consumer receives
        them; it changes the invisible duration of "extend" to twice its own
        and then acks it (with the receipt handle the change returned); it
        changes that of "shorten" to 1 s ("changing" event before the call,
        "changed" after) and does not ack it, receives it again (delivery
        attempt 2) and acks it then."""
        c = SimpleConsumer(self.config, self.group, {self.topic: FilterExpression()}, await_duration=2)
        c.startup()
        try:
            p = self.producer()
            try:
                for case in ("extend", "shorten"):
                    body = f"invisible-python-{case}"
                    m = Message()
                    m.topic = self.topic
                    m.body = body.encode("utf-8")
                    m.tag = "inv"
                    m.keys = f"k-{case}"
                    m.add_property("case", case)
                    r = p.send(m)
                    emit("sent", id=r.message_id, case=case, body=body)
            finally:
                p.shutdown()
            done = set()
            linger_until = None
            while linger_until is None or time.monotonic() < linger_until:
                if linger_until is None and time.monotonic() > self.deadline:
                    raise RuntimeError(f"settled {sorted(done)} of extend and shorten before the timeout")
                for msg in c.receive(16, self.invisible_s):
                    self.on_received(msg, "simple")
                    case = msg.properties.get("case", "")
                    if case == "shorten" and msg.delivery_attempt == 1:
                        emit("changing", id=msg.message_id, case=case, ts=now_ms())
                        c.change_invisible_duration(msg, 1)
                        emit("changed", id=msg.message_id, case=case)
                        continue
                    if case == "extend":
                        c.change_invisible_duration(msg, 2 * self.invisible_s)
                        emit("changed", id=msg.message_id, case=case)
                    c.ack(msg)
                    emit("acked", id=msg.message_id)
                    done.add(case)
                if linger_until is None and len(done) == 2:
                    linger_until = time.monotonic() + self.linger
        finally:
            c.shutdown()

    def transaction(self):
        """Three half messages: "commit" is committed, "rollback" rolled back,
        "unknown" left open so that the broker checks it back; the checker
        answers COMMIT for it (and ROLLBACK for anything else it is asked)."""

        class Checker(TransactionChecker):
            def check(self, message):
                outcome = message.properties.get("outcome", "")
                res = TransactionResolution.COMMIT if outcome == "unknown" else TransactionResolution.ROLLBACK
                emit("checked", id=message.message_id, outcome=outcome,
                     resolution="COMMIT" if res == TransactionResolution.COMMIT else "ROLLBACK")
                return res

        await_and_close = self.start_consumer()
        p = self.producer(Checker())
        try:
            for outcome in ("commit", "rollback", "unknown"):
                body = f"tx-python-{outcome}"
                m = Message()
                m.topic = self.topic
                m.body = body.encode("utf-8")
                m.tag = "tx"
                m.keys = f"k-{outcome}"
                m.add_property("outcome", outcome)
                tx = p.begin_transaction()
                r = p.send(m, tx)
                emit("sent", id=r.message_id, outcome=outcome, body=body)
                if outcome == "commit":
                    tx.commit()
                elif outcome == "rollback":
                    tx.rollback()
                emit("resolved", id=r.message_id, outcome=outcome)
            # The producer stays up (it answers the check-back) until both the
            # committed and the checked-back message have arrived.
            await_and_close(2)
        finally:
            p.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", choices=["normal", "fifo", "delay", "transaction", "filter", "invisible"])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--groups", type=int, default=3)
    ap.add_argument("--delay-ms", type=int, default=3000)
    ap.add_argument("--consumer", default="simple")
    ap.add_argument("--linger-ms", type=int, default=1500)
    ap.add_argument("--timeout-ms", type=int, default=90000)
    ap.add_argument("--invisible-ms", type=int, default=30000)
    ap.add_argument("--recall", type=int, default=0)
    ap.add_argument("--tag-want", type=int, default=0)
    ap.add_argument("--sql-want", type=int, default=0)
    args = ap.parse_args()
    code = 0
    try:
        getattr(Run(args), args.scenario)()
        emit("done")
    except BaseException:  # noqa: BLE001 - report anything, then exit non-zero
        sys.stderr.write(f"python interop {args.scenario} failed:\n{traceback.format_exc()}")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The client leaves non-daemon threads behind after shutdown; end here.
    os._exit(code)


if __name__ == "__main__":
    main()
