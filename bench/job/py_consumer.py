#!/usr/bin/python3
"""The Python reference consumer of the job benchmark: what the seed's job does, with Debian's
python3-confluent-kafka (librdkafka underneath): subscribe with a consumer group, consume in
batches, write each record as a JSON line (topic, partition, offset, timestamp, key, value: the
same work as klag-job's jsonl sink), commit after each batch (asynchronously; one synchronous
commit at the end), and exit once every assigned partition reached its end.

Offsets are stored by hand, one per record written (enable.auto.offset.store off): with it on,
librdkafka 2.8's batch consume (what `Consumer.consume` calls) also stores the offset of a
partition-EOF event, so the commit lands one past the end offset, the next fetch from it is out of
range and the group starts over from `earliest` (seen here with Debian's confluent-kafka 1.7.0:
committed end + 1 on every partition, even the empty ones).

    /usr/bin/python3 bench/job/py_consumer.py --bootstrap 127.0.0.1:9092 --group g \
        --topic t --out /dev/null

Prints one JSON line on stdout: {"records": N, "bytes": B} (key + value bytes).
"""
import argparse
import json
import sys

from confluent_kafka import Consumer, KafkaError, KafkaException


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", default="/dev/null")
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
    })
    assigned, at_end = set(), set()

    def on_assign(c, partitions):
        assigned.update(p.partition for p in partitions)

    def on_revoke(c, partitions):
        for p in partitions:
            assigned.discard(p.partition)
            at_end.discard(p.partition)

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    records = nbytes = 0
    with open(args.out, "w", buffering=1 << 20) as out:
        while not assigned or not assigned <= at_end:
            batch = consumer.consume(num_messages=args.batch, timeout=0.1)
            consumed = False
            for m in batch:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())
                        continue
                    raise KafkaException(err)
                key, value = m.key(), m.value()
                out.write(json.dumps({
                    "topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                    "timestamp": m.timestamp()[1],
                    "key": key.decode("utf-8", "replace") if key is not None else None,
                    "value": value.decode("utf-8", "replace") if value is not None else None,
                }) + "\n")
                consumer.store_offsets(message=m)
                at_end.discard(m.partition())
                records += 1
                nbytes += len(value or b"") + len(key or b"")
                consumed = True
            if consumed:
                consumer.commit(asynchronous=True)
    if records:
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as e:
            # Nothing new since the last asynchronous commit.
            if e.args[0].code() != KafkaError._NO_OFFSET:
                raise
    consumer.close()
    print(json.dumps({"records": records, "bytes": nbytes}))


if __name__ == "__main__":
    sys.exit(main())
