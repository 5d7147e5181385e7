#!/usr/bin/python3
"""Redelivery after SIGKILL (issue 8): how much acknowledged work a Job killed without warning
(node loss, OOM) makes its successor deliver again, per --commit-interval, side by side.

    /usr/bin/python3 bench/job/sigkill.py --bootstrap 127.0.0.1:9092 \
        --klag-job build/job/klag-job --klag-produce build/job/klag-produce \
        [--records 300000] [--kills 6] [--intervals 5s,1s] [--seed 1]

For each commit interval, a fresh group drains a fresh topic of --records records (6 partitions,
~200-byte stock prices written by klag-produce) with the jsonl sink into a file: a Job is started,
SIGKILLed a random time after it delivered its first record (the same sequence of times for every
interval, from --seed), and started again, --kills times; the last Job drains to the end. Nothing may be lost: the file must
hold every (partition, offset) of the topic. Redelivered = lines in the file - records. Then each
interval drains the topic once more without kills (a new group), for the cost of committing more
often: wall time, CPU seconds and OffsetCommit count (from the Job's summary line) per interval.
Prints a table (and JSON with --out).
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time


def log(*a):
    print("sigkill:", *a, file=sys.stderr, flush=True)


def produce(args, topic):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 6, 1)]).values():
        future.result(30)
    subprocess.run([args.klag_produce, "--bootstrap-servers", args.bootstrap, "--topic", topic,
                    "--count", str(args.records), "--partitions", "6", "--value-size", "200",
                    "--log-level", "warn"], check=True, stdout=subprocess.DEVNULL)


def job_cmd(args, topic, group, interval, path):
    return [args.klag_job, "--bootstrap-servers", args.bootstrap, "--group", group, "--topic",
            topic, "--sink", "jsonl", "--jsonl-path", path, "--commit-interval", interval,
            "--log-level", "warn"]


def count_lines(path):
    """Returns (records, distinct (partition, offset) pairs). A Job killed in the middle of a write
    leaves a torn last line, which the next Job's first line continues: the torn part was never
    acknowledged (the sink acknowledges after the write and fsync), so only the complete record at
    the end of such a line counts."""
    lines = 0
    seen = set()
    with open(path, "rb") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                r = json.loads(line[line.rindex(b'{"topic":'):])
            lines += 1
            seen.add((r["partition"], r["offset"]))
    return lines, len(seen)


def killed_drain(args, topic, interval, delays, workdir):
    group = f"sigkill-{topic}-{interval}"
    path = os.path.join(workdir, f"{group}.jsonl")
    open(path, "w").close()
    for delay in delays:
        size = os.path.getsize(path)
        proc = subprocess.Popen(job_cmd(args, topic, group, interval, path),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The delay counts from the first record this Job delivers: joining takes seconds (the
        # killed member holds its partitions until its session times out).
        deadline = time.monotonic() + 60
        while os.path.getsize(path) == size and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        if proc.poll() is not None:
            log(f"the Job ended before its kill at {delay:.2f} s (exit {proc.returncode})")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    last = subprocess.run(job_cmd(args, topic, group, interval, path), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    if last.returncode != 0:
        sys.exit(f"sigkill: the last Job exited {last.returncode}")
    lines, distinct = count_lines(path)
    os.unlink(path)
    return {"lines": lines, "distinct": distinct, "lost": args.records - distinct,
            "redelivered": lines - args.records}


def clean_drain(args, topic, interval):
    group = f"sigkill-clean-{topic}-{interval}"
    start = time.monotonic()
    before = os.times()
    out = subprocess.run(job_cmd(args, topic, group, interval, "/dev/null"),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    wall = time.monotonic() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system -
                                                          before.children_system)
    summary = json.loads(out.decode().strip().splitlines()[-1])
    return {"wall_s": wall, "cpu_s": cpu, "records": summary.get("records"),
            "commits": summary.get("commits")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--klag-job", required=True)
    ap.add_argument("--klag-produce", required=True)
    ap.add_argument("--records", type=int, default=300000)
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--intervals", default="5s,1s")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-delay", type=float, default=0.2)
    ap.add_argument("--max-delay", type=float, default=1.5)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    intervals = args.intervals.split(",")
    rng = random.Random(args.seed)
    delays = [rng.uniform(args.min_delay, args.max_delay) for _ in range(args.kills)]
    log("kill delays (s):", ", ".join(f"{d:.2f}" for d in delays))
    run = f"{int(time.time())}-{os.getpid()}"
    results = {"records": args.records, "kills": args.kills, "delays_s": delays, "intervals": {}}
    with tempfile.TemporaryDirectory() as workdir:
        for interval in intervals:
            topic = f"sigkill-{run}-{interval}"
            log(f"commit interval {interval}: producing {args.records} records to {topic}")
            produce(args, topic)
            killed = killed_drain(args, topic, interval, delays, workdir)
            clean = clean_drain(args, topic, interval)
            results["intervals"][interval] = {"killed": killed, "clean": clean}
            log(interval, killed, clean)
    print(f"\n{args.kills} SIGKILLs at the same random moments ({args.min_delay}-{args.max_delay} s "
          f"after the Job's first delivered record) during a {args.records:,}-record drain, then a "
          f"Job to the end:\n")
    print("| --commit-interval | lost | redelivered | redelivered per kill | clean drain wall s "
          "| CPU s | OffsetCommits |")
    print("|---|---|---|---|---|---|---|")
    for interval in intervals:
        k = results["intervals"][interval]["killed"]
        c = results["intervals"][interval]["clean"]
        print(f"| {interval} | {k['lost']} | {k['redelivered']:,} | "
              f"{k['redelivered'] / max(1, args.kills):,.0f} | {c['wall_s']:.2f} | "
              f"{c['cpu_s']:.2f} | {c['commits']} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    if any(r["killed"]["lost"] for r in results["intervals"].values()):
        sys.exit("sigkill: records were lost")


if __name__ == "__main__":
    main()
