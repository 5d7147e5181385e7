#!/usr/bin/python3
"""The job benchmark (issue 5, part 2): drain N records of ~200 bytes over 6 partitions to the end,
with commits, with klag-job (jsonl sink to /dev/null; postgres sink when --postgres-uri is
given), `kcat -G` (the librdkafka reference) and bench/job/py_consumer.py (confluent-kafka, what
the seed's job is), each with its own consumer group on the same topic; then time each one's exit
when there is no lag (same group again: start to exit, no work).

    /usr/bin/python3 bench/job/jobbench.py --bootstrap 127.0.0.1:9092 --topic job-bench \
        --records 1000000 --klag-job build-bench/job/klag-job \
        --klag-produce build-bench/job/klag-produce [--postgres-uri URI] --out job.json

The topic must exist with 6 partitions and be empty or hold exactly --records records (it is
filled with klag-produce when empty). Each process is measured with wait4(): wall time, peak RSS
(ru_maxrss), user+system CPU seconds. Every drain is checked: the group's committed offsets must
equal the end offsets afterwards (and the postgres table must hold every record). Prints a JSON
document on stdout (and to --out).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, TopicPartition


def run_measured(cmd, stdout=subprocess.DEVNULL, stderr=None):
    """Runs cmd under /usr/bin/time (a small parent: the child's peak RSS is its own, not
    inherited from this Python process across fork and exec); returns ({exit_code, wall_s,
    cpu_s, user_s, sys_s, peak_rss_mb}, stdout text or None)."""
    capture = stdout == subprocess.PIPE
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        start = time.monotonic()
        proc = subprocess.Popen(["/usr/bin/time", "-q", "-f", "%x %U %S %M", "-o", tf.name] + cmd,
                                stdout=stdout, stderr=stderr)
        out = proc.stdout.read().decode() if capture else None
        proc.wait()
        wall = time.monotonic() - start
        fields = tf.read().split()
    code, user, system, rss_kb = int(fields[0]), float(fields[1]), float(fields[2]), int(fields[3])
    return {
        "exit_code": code,
        "wall_s": wall,
        "cpu_s": user + system,
        "user_s": user,
        "sys_s": system,
        "peak_rss_mb": rss_kb / 1024.0,
    }, out


def offsets(bootstrap, topic, group, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        committed = [tp.offset for tp in c.committed(tps, timeout=15)]
        ends = [c.get_watermark_offsets(tp, timeout=15)[1] for tp in tps]
        return committed, ends
    finally:
        c.close()


def postgres_alone(uri, table, partitions):
    """The server's own ceiling for this load: the rows klag-job loaded into `table`, exported
    in COPY's binary format and loaded again by psql into an empty table of the same definition
    (primary key included): once with one COPY (what one PostgreSQL backend takes with no client
    work, no batches and no Kafka), once as two COPYs at the same time (the partitions split in
    two halves; two backends, as the sink's two connections). Returns {rows, wall_s, rows_per_s,
    two: {rows, wall_s, rows_per_s}} or {error}."""
    cols = 'topic, "partition", "offset", "timestamp", key, value, value_json, headers'
    ref = f"{table}_alone"

    def psql(sql):
        return subprocess.run(["psql", uri, "-v", "ON_ERROR_STOP=1", "-qc", sql],
                              capture_output=True, text=True)

    def load(paths):
        for sql in (f"DROP TABLE IF EXISTS {ref}", f"CREATE TABLE {ref} (LIKE {table} INCLUDING ALL)",
                    "CHECKPOINT"):
            r = psql(sql)
            if r.returncode != 0:
                return {"error": r.stderr.strip()}
        start = time.monotonic()
        procs = [subprocess.Popen(["psql", uri, "-v", "ON_ERROR_STOP=1", "-qc",
                                   f"\\copy {ref} ({cols}) FROM '{path}' WITH (FORMAT binary)"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for path in paths]
        errors = [p.communicate()[1].strip() for p in procs]
        wall = time.monotonic() - start
        if any(p.returncode != 0 for p in procs):
            return {"error": "; ".join(e for e in errors if e) or "psql failed"}
        count = subprocess.run(["psql", uri, "-tAc", f"SELECT count(*) FROM {ref}"],
                               capture_output=True, text=True)
        rows = int(count.stdout.strip() or 0)
        return {"rows": rows, "wall_s": wall, "rows_per_s": rows / wall if wall > 0 else None}

    half = (partitions + 1) // 2
    with tempfile.TemporaryDirectory() as tmp:
        exports = {"all": ("TRUE", os.path.join(tmp, "all.bin")),
                   "low": (f'"partition" < {half}', os.path.join(tmp, "low.bin")),
                   "high": (f'"partition" >= {half}', os.path.join(tmp, "high.bin"))}
        for where, path in exports.values():
            r = psql(f"\\copy (SELECT {cols} FROM {table} WHERE {where}) TO '{path}' WITH (FORMAT binary)")
            if r.returncode != 0:
                return {"error": r.stderr.strip()}
        one = load([exports["all"][1]])
        if "error" not in one:
            one["two"] = load([exports["low"][1], exports["high"][1]])
        psql(f"DROP TABLE IF EXISTS {ref}")
    return one


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="job-bench")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--value-size", type=int, default=200)
    ap.add_argument("--klag-job", required=True)
    ap.add_argument("--klag-produce", required=True)
    ap.add_argument("--kcat", default="kcat")
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--postgres-uri", default="")
    ap.add_argument("--nowork-reps", type=int, default=3)
    ap.add_argument("--run-id", default=str(int(time.time())))
    ap.add_argument("--out", default="")
    ap.add_argument("--log-dir", default="", help="stderr of each run goes to <dir>/job-<name>.log")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    log = lambda *a: print("jobbench:", *a, file=sys.stderr, flush=True)

    # Data: fill the topic once.
    _, ends = offsets(args.bootstrap, args.topic, "jobbench-probe", args.partitions)
    total = sum(ends)
    produce = None
    if total == 0:
        log(f"producing {args.records} records of {args.value_size} bytes to {args.topic}")
        produce, out = run_measured([args.klag_produce, "--bootstrap-servers", args.bootstrap,
                                     "--topic", args.topic, "--count", str(args.records),
                                     "--partitions", str(args.partitions),
                                     "--value-size", str(args.value_size), "--log-level", "warn"],
                                    stdout=subprocess.PIPE)
        produce["summary"] = json.loads(out.strip().splitlines()[-1])
        _, ends = offsets(args.bootstrap, args.topic, "jobbench-probe", args.partitions)
        total = sum(ends)
    if total != args.records:
        sys.exit(f"jobbench: {args.topic} holds {total} records, want {args.records} (use a fresh topic)")

    rid = args.run_id
    contenders = [
        ("kcat", lambda g: [args.kcat, "-b", args.bootstrap, "-G", g, "-X", "auto.offset.reset=earliest",
                            "-X", "enable.auto.commit=true", "-e", "-q", args.topic]),
        ("klag-job jsonl", lambda g: [args.klag_job, "--bootstrap-servers", args.bootstrap,
                                      "--group", g, "--topic", args.topic, "--sink", "jsonl",
                                      "--jsonl-path", "/dev/null", "--log-level", "warn"]),
        ("python confluent-kafka", lambda g: [args.python, os.path.join(here, "py_consumer.py"),
                                              "--bootstrap", args.bootstrap, "--group", g,
                                              "--topic", args.topic, "--out", "/dev/null"]),
    ]
    if args.postgres_uri:
        table = f"bench_{rid}"
        # The defaults (2 connections, batches of 5,000) and the sink as it was before them (one
        # connection, batches of 500), side by side.
        for name, extra, tbl in (("klag-job postgres", [], table),
                                 ("klag-job postgres 1 conn batch 500",
                                  ["--postgres-connections", "1", "--batch-size", "500"],
                                  f"{table}_one")):
            contenders.append((name, lambda g, extra=extra, tbl=tbl: [
                args.klag_job, "--bootstrap-servers", args.bootstrap, "--group", g, "--topic",
                args.topic, "--sink", "postgres", "--postgres-uri", args.postgres_uri,
                "--postgres-table", tbl, "--log-level", "warn"] + extra))

    results = []
    payload_bytes = None
    for name, cmd in contenders:
        group = f"jobbench-{rid}-{name.replace(' ', '-')}"
        log(f"draining with {name} (group {group})")
        errlog = open(os.path.join(args.log_dir, f"job-{name.replace(' ', '-')}.log"), "w") \
            if args.log_dir else subprocess.DEVNULL
        drain, out = run_measured(cmd(group), stdout=subprocess.PIPE, stderr=errlog)
        committed, ends = offsets(args.bootstrap, args.topic, group, args.partitions)
        drain["committed_to_end"] = committed == ends
        summary = {}
        if out and out.strip():
            try:
                summary = json.loads(out.strip().splitlines()[-1])
            except ValueError:
                pass
        if "records" in summary:
            drain["records"] = summary["records"]
        if name.startswith("python") and "bytes" in summary:
            payload_bytes = summary["bytes"]
        payload_bytes = payload_bytes or summary.get("bytes")
        if name.startswith("klag-job postgres"):
            tbl = table if name == "klag-job postgres" else f"{table}_one"
            rows = subprocess.run(["psql", args.postgres_uri, "-tAc", f"select count(*) from {tbl}"],
                                  capture_output=True, text=True)
            drain["postgres_rows"] = int(rows.stdout.strip() or -1)
            if name == "klag-job postgres":
                drain["postgres_alone"] = postgres_alone(args.postgres_uri, table, args.partitions)
        nowork = []
        for _ in range(args.nowork_reps):
            r, out = run_measured(cmd(group), stdout=subprocess.PIPE, stderr=errlog)
            if name.startswith("klag-job") and out and out.strip():
                try:  # klag-job's own measure of the run, from its summary line
                    r["own_duration_s"] = json.loads(out.strip().splitlines()[-1])["duration_s"]
                except (ValueError, KeyError):
                    pass
            nowork.append(r)
        walls = sorted(r["wall_s"] for r in nowork)
        results.append({"name": name, "drain": drain, "nowork": nowork,
                        "nowork_median_s": walls[len(walls) // 2]})
        ok = drain["exit_code"] == 0 and drain["committed_to_end"]
        log(f"  {name}: exit {drain['exit_code']}, {drain['wall_s']:.2f} s, "
            f"committed to end: {drain['committed_to_end']}, no-work exit {walls[len(walls)//2]*1000:.0f} ms"
            + ("" if ok else "  <-- FAILED"))
    for r in results:
        d = r["drain"]
        d["records_per_s"] = args.records / d["wall_s"]
        if payload_bytes:
            d["mb_per_s"] = payload_bytes / d["wall_s"] / 1e6
    doc = {"records": args.records, "partitions": args.partitions, "payload_bytes": payload_bytes,
           "produce": produce, "results": results}
    text = json.dumps(doc, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
