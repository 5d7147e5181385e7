#!/usr/bin/env python3
"""An exec-sink record handler for klag-job: one process per batch.

klag-job runs `--exec-command` through /bin/sh once per batch and writes the batch to its stdin
as JSON lines (job/README.md, "JSON line format"); KLAG_BATCH_RECORDS holds the number of records.
The batch counts as delivered only when this process exits 0; any other exit makes klag-job retry
the batch and, after --max-attempts, dead-letter it or fail without committing it. Delivery is
at least once, so the handler must be idempotent: here every output row carries the record's
(topic, partition, offset), the key a loader deduplicates on.

This example loads ListedStockPrice records (klag-produce's format:
{"symbol": "ACME", "price": 12.34, "volume": 100, "timestamp": 1700000000000}) as CSV rows into
the file named by HANDLER_OUTPUT (default: stdout, which klag-job logs on its stderr) and fsyncs
it before exiting 0. A record that is not a stock price exits 65 (EX_DATAERR) before anything is
written, so a bad batch leaves no partial output. Replace `load` with the real work.
"""

import csv
import json
import os
import sys

EX_DATAERR = 65


def parse(line_number, line):
    """Returns the CSV row for one JSON line, or raises ValueError naming what is wrong."""
    record = json.loads(line)
    where = "%s/%d@%d" % (record["topic"], record["partition"], record["offset"])
    value = record.get("value")
    if value is None:
        raise ValueError("line %d (%s): the record has no UTF-8 value" % (line_number, where))
    try:
        price = json.loads(value)
        row = [record["topic"], record["partition"], record["offset"], price["symbol"],
               float(price["price"]), int(price["volume"]), int(price["timestamp"])]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError("line %d (%s): not a stock price: %r" % (line_number, where, e)) from None
    return row


def load(rows):
    """Appends the rows to HANDLER_OUTPUT (or stdout) and makes them durable."""
    path = os.environ.get("HANDLER_OUTPUT")
    out = open(path, "a", newline="") if path else sys.stdout
    writer = csv.writer(out)
    writer.writerows(rows)
    out.flush()
    if path:
        os.fsync(out.fileno())
        out.close()


def main():
    rows = []
    for number, line in enumerate(sys.stdin, start=1):
        try:
            rows.append(parse(number, line))
        except (ValueError, KeyError, TypeError) as e:
            print("handler: %s" % e, file=sys.stderr)
            return EX_DATAERR
    expected = os.environ.get("KLAG_BATCH_RECORDS")
    if expected is not None and int(expected) != len(rows):
        print("handler: read %d records, klag-job sent %s" % (len(rows), expected), file=sys.stderr)
        return EX_DATAERR
    load(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
