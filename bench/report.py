#!/usr/bin/python3
"""Turns one bench/run.sh results directory into tables: prints them and, with --doc, rewrites
docs/benchmarks.md. Every figure comes from the JSON files of that run (env.json, load.jsonl,
lag.json, fanout.jsonl, job.json, keda-build.json, done.json); nothing is typed in by hand.

    /usr/bin/python3 bench/report.py .cache/bench/20260101T000000Z [--doc docs/benchmarks.md]
"""
import argparse
import json
import os
import sys


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def read_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def fmt(x, digits=1):
    if x is None:
        return "n/a"
    if isinstance(x, int):
        return f"{x:,}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}f}"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.{digits}f}x"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def lat(res, kind, q):
    return (res.get("latency") or {}).get(kind, {}).get(q)


def worst_rpc_p99(res):
    return max((lat(res, k, "p99_ms") or 0) for k in ("GetMetricSpec", "GetMetrics", "IsActive"))


# ---- sections ---------------------------------------------------------------------------------

def section_env(d):
    env, load, done = d["env"], d["load"], d["done"]
    lines = []
    build_s = next((b["t"] for a, b in zip(load, load[1:]) if a["phase"] == "build"), None)
    lines.append(f"- Date: {env.get('date')}, mode `{env.get('mode')}`, total "
                 f"{done.get('total_s', 'n/a')} s"
                 + (f" ({build_s} s of it building, {done['total_s'] - build_s} s running)"
                    if build_s is not None and "total_s" in done else ""))
    lines.append(f"- Machine: {env.get('nproc')} cores ({env.get('cpu')}), {env.get('mem_gib')} GiB, "
                 f"{env.get('os')}, kernel {env.get('kernel')}")
    loads = ", ".join(f"{p['phase']} {p['load'].split()[0]}" for p in load)
    lines.append(f"- Load average (1 min) at the start of each phase: {loads}; at the end "
                 f"{done.get('load_end', 'n/a').split()[0] if done.get('load_end') else 'n/a'}")
    rev = env.get("klag_rev", "").replace(
        " (dirty tree)", " (dirty tree: built from the shared working tree, with other engineers' "
        "uncommitted changes)")
    lines.append(f"- klag {rev}; Kafka {env.get('kafka')} (one broker, KRaft, "
                 f"127.0.0.1); librdkafka {env.get('librdkafka')}; KEDA {env.get('keda')}; "
                 f"kcat {env.get('kcat')}; confluent-kafka {env.get('confluent_kafka')}; "
                 f"{env.get('go')}; gcc {env.get('gcc')}; {env.get('postgres')}")
    kb = d.get("keda_build")
    if kb:
        lines.append(f"- Building the KEDA reference (bench/keda-ref, all of pkg/scalers) took "
                     f"{kb['keda_ref_build_s']} s in this run (Go build cache warm or cold as found)")
    peak = max([float(p["load"].split()[0]) for p in load] or [0])
    nproc = env.get("nproc") or 1
    if peak > nproc:
        lines.append(
            f"- **Noisy machine**: the load average reached {peak:.1f} on {nproc} cores (other "
            f"builds and tests were running). Absolute times are inflated and vary between runs; "
            f"the ratios compare both sides measured in the same run, one after the other.")
    return "\n".join(lines)


def fanout_pairs(d):
    by = {}
    for r in d["fanout"]:
        by.setdefault(r.get("S"), {})[r.get("side")] = r
    return [(s, by[s].get("klag"), by[s].get("keda")) for s in sorted(k for k in by if k is not None)]


def section_fanout(d):
    pairs = fanout_pairs(d)
    if not pairs:
        return "Not run.", []
    rows = []
    for s, k, r in pairs:
        for side, res in (("klag-scaler", k), ("KEDA kafka scaler", r)):
            if res is None:
                rows.append([fmt(s), side, "not run"] + [""] * 8)
                continue
            if "error" in res:
                rows.append([fmt(s), side, "failed: " + res["error"].strip().splitlines()[-1][:120]] + [""] * 8)
                continue
            heavy = "GetMetrics" if side.startswith("klag") else "GetMetricsAndActivity"
            by_api = res.get("kafka_requests_per_cycle_by_api") or {}
            api_text = ", ".join(f"{a} {fmt(v)}" for a, v in sorted(by_api.items(), key=lambda x: -x[1]))
            rows.append([
                fmt(s), side,
                f"{fmt(lat(res, heavy, 'p50_ms'))} / {fmt(lat(res, heavy, 'p99_ms'))}",
                f"{fmt(lat(res, 'poll', 'p50_ms'))} / {fmt(lat(res, 'poll', 'p99_ms'))}",
                fmt(res.get("kafka_requests_per_cycle")) + (f" ({api_text})" if api_text else ""),
                fmt(res.get("peak_rss_mb")),
                fmt(res.get("cpu_s_per_cycle"), 2),
                f"{res.get('failed_polls', 0)} / {res.get('polls', 0)}",
                f"{res.get('interval_s')} s x {fmt(res.get('cycles'), 1)}",
                fmt(res.get("kafka_connections_opened")),
                f"{res.get('value_mismatches', 0)}",
            ])
    main = table(["S", "side", "metric call p50 / p99 ms", "whole poll p50 / p99 ms",
                  "Kafka requests per cycle", "peak RSS MB", "CPU s per cycle",
                  "failed / polls", "interval x cycles", "Kafka connections", "wrong values"], rows)

    rrows = []
    for s, k, r in pairs:
        if not k or not r or "error" in k or "error" in r:
            continue
        rrows.append([fmt(s),
                      ratio(lat(k, "poll", "p50_ms"), lat(r, "poll", "p50_ms")),
                      ratio(lat(k, "poll", "p99_ms"), lat(r, "poll", "p99_ms")),
                      ratio(k.get("kafka_requests_per_cycle"), r.get("kafka_requests_per_cycle")),
                      ratio(k.get("peak_rss_mb"), r.get("peak_rss_mb"), 3),
                      ratio(k.get("cpu_s_per_cycle"), r.get("cpu_s_per_cycle"))])
    ratios = table(["S", "poll p50", "poll p99", "Kafka requests per cycle", "peak RSS",
                    "CPU per cycle"], rrows)

    # Memory per trigger: slope between the smallest and the largest S.
    slope_lines = []
    ok = [(s, k, r) for s, k, r in pairs if k and r and "error" not in k and "error" not in r]
    if len(ok) >= 2:
        (s0, k0, r0), (s1, k1, r1) = ok[0], ok[-1]
        ks = (k1["peak_rss_mb"] - k0["peak_rss_mb"]) * 1024 / (s1 - s0)
        rs = (r1["peak_rss_mb"] - r0["peak_rss_mb"]) * 1024 / (s1 - s0)
        slope_lines.append(
            f"Peak RSS per additional ScaledJob between S = {fmt(s0)} and S = {fmt(s1)}: "
            f"klag-scaler {ks:.1f} KiB, KEDA's scaler code {rs:.1f} KiB ({ratio(ks, rs, 3)}). "
            f"KEDA's figure at small S is mostly its binary (every scaler's SDK is linked in, as "
            f"in the operator).")
    klag_rpc = []
    for s, k, _ in pairs:
        if k and "error" not in k:
            klag_rpc.append([fmt(s)] + [f"{fmt(lat(k, kind, 'p50_ms'))} / {fmt(lat(k, kind, 'p99_ms'))} / {fmt(lat(k, kind, 'max_ms'))}"
                                        for kind in ("GetMetricSpec", "GetMetrics", "IsActive")]
                            + [k.get("first_error", "")[:100]])
    rpc_table = table(["S", "GetMetricSpec p50 / p99 / max ms", "GetMetrics", "IsActive",
                       "first error"], klag_rpc)
    note = ("Latencies are per call as the load generator saw them, failed calls included; "
            "\"metric call\" is GetMetrics for klag-scaler and GetMetricsAndActivity for KEDA's code; "
            "a whole poll is GetMetricSpec + GetMetrics + IsActive (klag-scaler, over gRPC) or "
            "GetMetricSpecForScaling + GetMetricsAndActivity (KEDA's code, in process). Kafka requests "
            "are counted on the wire by kproxy. CPU and peak RSS are the scaler process's alone (the "
            "load generator's gRPC client side is not counted).")
    text = "\n\n".join([note, main, "Ratios, klag-scaler / KEDA (below 1 is better for klag):", ratios]
                       + slope_lines + ["klag-scaler per RPC:", rpc_table])
    return text, pairs


def section_job(d):
    job = d.get("job")
    if not job:
        return "Not run (klag-job not built, or the part was skipped).", None
    rows = []
    by = {r["name"]: r for r in job["results"]}
    for r in job["results"]:
        dr = r["drain"]
        rows.append([r["name"], fmt(dr.get("records_per_s")), fmt(dr.get("mb_per_s")),
                     fmt(dr.get("wall_s"), 2), fmt(dr.get("peak_rss_mb")), fmt(dr.get("cpu_s"), 2),
                     fmt(r["nowork_median_s"] * 1000, 0),
                     ("yes" if dr.get("committed_to_end") and dr.get("exit_code") == 0 else
                      f"NO (exit {dr.get('exit_code')})")
                     + (f", {dr['postgres_rows']:,} rows" if "postgres_rows" in dr else "")])
    t = table(["consumer", "records/s", "MB/s", "wall s", "peak RSS MB", "CPU s",
               "no-work exit ms", "drained and committed"], rows)
    k, kc, py = by.get("klag-job jsonl"), by.get("kcat"), by.get("python confluent-kafka")
    rr = []
    for name, ref in (("kcat", kc), ("python confluent-kafka", py)):
        if k and ref:
            rr.append([f"klag-job jsonl / {name}",
                       ratio(k["drain"]["records_per_s"], ref["drain"]["records_per_s"]),
                       ratio(k["drain"]["peak_rss_mb"], ref["drain"]["peak_rss_mb"]),
                       ratio(k["drain"]["cpu_s"], ref["drain"]["cpu_s"]),
                       ratio(k["nowork_median_s"], ref["nowork_median_s"])])
    rt = table(["", "throughput", "peak RSS", "CPU s", "no-work exit"], rr)
    head = (f"{fmt(job['records'])} records over {job['partitions']} partitions, "
            f"{fmt((job.get('payload_bytes') or 0) / job['records'], 0)} bytes each (key + value) on "
            f"average; each consumer drains with its own group and commits; MB/s counts key + value "
            f"bytes. No-work exit: the same command again on the fully committed group, start to "
            f"exit (median of {len(job['results'][0]['nowork'])}).")
    return "\n\n".join([head, t, rt]), by


def section_micro(d):
    lag = d.get("lag")
    if not lag:
        return "Not run."
    rows = {}
    order = []
    for b in lag.get("benchmarks", []):
        name = b["name"]
        base, _, arg = name.partition("/")
        if base not in rows:
            rows[base] = {}
            order.append(base)
        ns = b["cpu_time"] if b.get("time_unit") == "ns" else b["cpu_time"] * {"us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
        rows[base][arg or "-"] = (ns, b.get("items_per_second"))
    cols = ["-", "12", "1000", "10000"]
    out = []
    for base in order:
        cells = []
        for c in cols:
            v = rows[base].get(c)
            if v is None:
                cells.append("")
            else:
                ns, ips = v
                t = f"{ns / 1000:.2f} us" if ns >= 1000 else f"{ns:.0f} ns"
                if ips and c != "-":
                    t += f" ({ips / 1e6:.1f} M partitions/s)"
                cells.append(t)
        out.append([base.replace("BM_", "")] + cells)
    ctx = lag.get("context", {})
    head = (f"CPU time per call (klag's code built Release; Debian's libbenchmark reports itself as a "
            f"{ctx.get('library_build_type', '?')} build, which affects only the harness; "
            f"{ctx.get('num_cpus')} CPUs, load {', '.join(f'{x:.1f}' for x in ctx.get('load_avg', []))} "
            f"when it ran); P = partitions of the one topic.")
    return head + "\n\n" + table(["benchmark", "no P", "P = 12", "P = 1,000", "P = 10,000"], out)


def targets(d, pairs, job_by):
    rows = []
    notes = []
    big = next(((s, k, r) for s, k, r in reversed(pairs) if k and r), None) if pairs else None
    if big:
        s, k, r = big
        if "error" in k:
            rows.append([f"S = {fmt(s)}: fan-out", "klag-scaler run failed", "missed", k["error"][:200]])
        else:
            p99 = worst_rpc_p99(k)
            failed = k.get("failed_polls", 0)
            met = p99 < 100 and failed == 0
            rows.append([f"S = {fmt(s)}: RPC p99 under 100 ms",
                         f"worst per-RPC p99 {fmt(p99)} ms (GetMetrics p99 {fmt(lat(k, 'GetMetrics', 'p99_ms'))} ms); "
                         f"{failed} of {k.get('polls')} polls failed",
                         "met" if met else "missed", ""])
            if not met:
                why = []
                fe = k.get("first_error", "")
                if "Threadpool Exhausted" in fe:
                    why.append("klag-scaler refused RPCs with RESOURCE_EXHAUSTED (\"Server Threadpool "
                               "Exhausted\"): the synchronous gRPC server has --max-threads 256 threads "
                               "and each GetMetrics holds one while it waits for Kafka")
                if (lat(k, "GetMetrics", "p99_ms") or 0) > 100:
                    why.append("GetMetrics waits for an OffsetFetch and two ListOffsets lookups; the "
                               "reader holds each lookup for its 5 ms batching window and keeps one "
                               "offsets_for_times call in flight per kind, so lookups queue as the "
                               "request rate grows (kafka/rdkafka_offset_reader.h)")
                    why.append("what would close it: end/log-start offsets shared by every trigger on "
                               "a topic for a short time (one ListOffsets per leader per second instead "
                               "of per poll), and an asynchronous gRPC server so waiting RPCs hold no "
                               "thread")
                rows[-1][3] = "; ".join(why)
            if "error" not in r:
                kr, rr = k.get("kafka_requests_per_cycle"), r.get("kafka_requests_per_cycle")
                by_api = k.get("kafka_requests_per_cycle_by_api") or {}
                per_trigger = kr / s if kr else None
                # One OffsetFetch per group is the floor (groups = S here, one broker).
                met = per_trigger is not None and per_trigger <= 1.2
                why = ""
                if not met:
                    parts = []
                    fc = by_api.get("FindCoordinator", 0)
                    if fc > 0.5 * s:
                        parts.append(f"FindCoordinator {fmt(fc)} per cycle: librdkafka's admin "
                                     f"ListConsumerGroupOffsets looks the coordinator up on every call")
                    lo = by_api.get("ListOffsets", 0)
                    if lo > 0.1 * s:
                        parts.append(f"ListOffsets {fmt(lo)} per cycle (about {2 * s / lo:.1f} lookups per "
                                     f"request): polls spread over the interval meet only a few others "
                                     f"inside the reader's 5 ms batching window")
                    parts.append("what would close it: look the coordinator up once per group and "
                                 "reuse it (it moves only when brokers change), and share end/log-start "
                                 "offsets per topic for a short time, leaving about one OffsetFetch per "
                                 "group plus a few ListOffsets per broker")
                    why = "; ".join(parts)
                rows.append([f"S = {fmt(s)}: Kafka requests per cycle grow with groups and brokers, not 3 x S",
                             f"{fmt(kr)} per cycle = {per_trigger:.2f} per ScaledJob (3 x S = {fmt(3 * s)}; "
                             f"KEDA's code {fmt(rr)} = {rr / s:.2f} per ScaledJob); floor: 1 OffsetFetch per group",
                             "met" if met else "missed", why])
                krss, rrss = k.get("peak_rss_mb"), r.get("peak_rss_mb")
                met = krss is not None and rrss and krss < 0.1 * rrss
                rows.append([f"S = {fmt(s)}: peak RSS under 10% of KEDA's scaler code",
                             f"{fmt(krss)} MB vs {fmt(rrss)} MB = {100 * krss / rrss:.1f}%",
                             "met" if met else "missed", ""])
    if job_by:
        k, kc, py = job_by.get("klag-job jsonl"), job_by.get("kcat"), job_by.get("python confluent-kafka")
        if k and kc:
            x = k["drain"]["records_per_s"] / kc["drain"]["records_per_s"]
            rows.append(["klag-job throughput at least 0.9x kcat",
                         f"{fmt(k['drain']['records_per_s'])} vs {fmt(kc['drain']['records_per_s'])} records/s = {x:.2f}x",
                         "met" if x >= 0.9 else "missed",
                         "" if x >= 0.9 else
                         f"klag-job used {k['drain']['cpu_s']:.2f} CPU s in {k['drain']['wall_s']:.2f} s wall: "
                         f"it is mostly waiting, not computing"])
        if k and py:
            x = k["drain"]["records_per_s"] / py["drain"]["records_per_s"]
            rows.append(["klag-job throughput at least 3x Python",
                         f"{fmt(k['drain']['records_per_s'])} vs {fmt(py['drain']['records_per_s'])} records/s = {x:.2f}x",
                         "met" if x >= 3 else "missed", ""])
        if k:
            ms = k["nowork_median_s"] * 1000
            own = sorted(n["own_duration_s"] for n in k["nowork"] if "own_duration_s" in n)
            own_text = (f"; klag-job's own summary reports {own[len(own) // 2] * 1000:.0f} ms, the rest "
                        f"is process start-up and exit") if own else ""
            rows.append(["klag-job no-work exit under 200 ms", f"{ms:.0f} ms (median, start to exit{own_text})",
                         "met" if ms < 200 else "missed", ""])
            rss = k["drain"]["peak_rss_mb"]
            rows.append(["klag-job peak RSS under 50 MB (jsonl)", f"{rss:.1f} MB",
                         "met" if rss < 50 else "missed",
                         "" if rss < 50 else (f"kcat on the same librdkafka with its defaults (pre-fetch up to "
                                              f"queued.max.messages.kbytes = 64 MiB): {kc['drain']['peak_rss_mb']:.1f} MB"
                                              if kc else "")])
    return table(["target", "figure", "verdict", "why"], rows) if rows else "No targets evaluated."


HOWTO = """\
## Benchmarks: how to run them

```sh
bench/run.sh            # everything, under 15 minutes on 2 cores; rewrites this file
bench/run.sh --quick    # shorter sweep and 200,000 job records, under 3 minutes once built
```

`bench/run.sh` builds `build-bench` (Release, `-DKLAG_BUILD_BENCH=ON`) and the Go programs,
starts its own broker (`scripts/kafka.sh --state .cache/kafka/bench`) and PostgreSQL
(`scripts/postgres.sh --state .cache/postgres/bench`), runs the three parts below, prints the
tables and rewrites this file with them (`--no-doc` to keep it). Raw results (one JSON file per
part) stay in `.cache/bench/<date>/`; `bench/report.py <dir>` turns them into these tables again.
`--only micro,fanout,job` and `--sizes 10,100` run a subset.

- **Fan-out** (`bench/fanout`, `bench/keda-ref`): `ksetup` creates 100 topics of 12
  partitions with 100 records each and S consumer groups; group g reads topic g mod 100 and has
  committed offset 10 + g mod 50 on each partition, so every group has lag (the value each side
  reports is checked against it). The topics are shared by groups because one test broker cannot
  hold S x 12 partitions at S = 5,000 (60,000 partitions); sharing changes nothing on KEDA's side
  (one Metadata, OffsetFetch and ListOffsets per trigger whatever the topic) and lets klag's
  batched ListOffsets carry fewer distinct partitions. `fanout` plays the KEDA operator against a
  fresh `klag-scaler` per S: one goroutine per ScaledJob at a random phase, every interval
  GetMetricSpec, GetMetrics, IsActive over one shared gRPC connection (KEDA's generated client).
  `keda-ref` runs KEDA v2.20.2's own `kafka` scaler code (`scalers.NewKafkaScaler`, one instance
  and one sarama client per trigger, as the operator keeps them) with the same loop and calls
  GetMetricSpecForScaling and GetMetricsAndActivity. The interval is compressed (1-5 s instead of
  30 s); klag-scaler runs with `--evaluation-window 500ms` so that no poll reuses the previous
  poll's evaluation. Both sides talk to the broker through `kproxy`, a proxy that counts Kafka
  requests per API on the wire (klag-scaler does not expose its own counters yet). CPU seconds
  and peak RSS (VmHWM) are those of the klag-scaler process, or of the keda-ref process.
- **Job** (`bench/job/jobbench.py`): `klag-produce` writes the records; klag-job (jsonl sink to
  /dev/null, and the postgres sink), `kcat -G ... -e` (auto-commit, committed on close) and
  `bench/job/py_consumer.py` (confluent-kafka: batches of 500, one JSON line per record like
  klag-job's jsonl sink, commit per batch) each drain the topic with their own group; every drain
  is checked (committed offsets equal the end offsets; the postgres table holds every record).
  wait4() gives peak RSS and CPU. Then each runs again on its drained group: the no-work exit.
- **Lag evaluation cost** (`bench/lag_bench.cc`, `klag_lag_bench`): Google Benchmark of the
  pure code, at P = 12, 1,000 and 10,000 partitions.
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--doc", default="")
    args = ap.parse_args()
    r = args.results
    d = {
        "env": read_json(os.path.join(r, "env.json"), {}),
        "load": read_jsonl(os.path.join(r, "load.jsonl")),
        "done": read_json(os.path.join(r, "done.json"), {}),
        "keda_build": read_json(os.path.join(r, "keda-build.json")),
        "lag": read_json(os.path.join(r, "lag.json")),
        "fanout": read_jsonl(os.path.join(r, "fanout.jsonl")),
        "job": read_json(os.path.join(r, "job.json")),
    }
    fan_text, pairs = section_fanout(d)
    job_text, job_by = section_job(d)
    body = "\n\n".join([
        "## This run",
        section_env(d),
        "## Targets of issue 5",
        targets(d, pairs, job_by),
        "## 1. Scaler fan-out: many ScaledJobs on one cluster (P = 12)",
        fan_text,
        "## 2. The Job: drain throughput, start-up, memory",
        job_text,
        "## 3. Lag evaluation cost (micro-benchmarks)",
        section_micro(d),
    ])
    print(body)
    if args.doc:
        doc = ("# klag benchmarks\n\n"
               "Generated by `bench/run.sh` from the run described below; every figure comes from "
               "that run (raw results: `.cache/bench/" + os.path.basename(os.path.normpath(r)) +
               "/`). Do not edit by hand: run the benchmarks again.\n\n" + HOWTO + "\n" + body + "\n")
        with open(args.doc, "w") as f:
            f.write(doc)
        print(f"\nbench: wrote {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
