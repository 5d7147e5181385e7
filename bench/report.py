#!/usr/bin/python3
"""Turns one bench/run.sh results directory into tables: prints them and, with --doc, rewrites
docs/benchmarks.md. Every figure comes from the JSON files of that run (env.json, load.jsonl,
lag.json, fanout.jsonl, job.json, keda-build.json, done.json); nothing is typed in by hand.

    /usr/bin/python3 bench/report.py .cache/bench/20260101T000000Z [--doc docs/benchmarks.md]
"""
import argparse
import glob
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
            f"- **Loaded machine**: the load average reached {peak:.1f} on {nproc} cores (the "
            f"phase list above shows when: the benchmark's own processes, load generator, "
            f"proxies, broker and the side under test, share the cores, and anything else "
            f"running adds to them). Absolute times are inflated and vary between runs; the "
            f"ratios compare both sides measured in the same run, one after the other.")
    return "\n".join(lines)


BASE = "distinct groups"


def fanout_rows(d):
    """{(S, variant): {side: result}} of every fan-out run (variant "distinct groups" for the
    S sweep)."""
    by = {}
    for r in d["fanout"]:
        by.setdefault((r.get("S"), r.get("variant") or BASE), {})[r.get("side")] = r
    return by


def fanout_pairs(d):
    """(S, klag, keda) of the S sweep, by S."""
    by = fanout_rows(d)
    return [(s, v.get("klag"), v.get("keda")) for (s, var), v in sorted(by.items(), key=lambda x: x[0][0] or 0)
            if var == BASE and s is not None]


def keda_of(by, s, var):
    """KEDA's result for a row: its own, or for a klag-only refinement of a variant ("10
    ScaledJobs per group (--flag)"), KEDA's row of the variant without the note."""
    r = by[(s, var)].get("keda")
    if r is None and var.endswith(")") and " (" in var:
        r = by.get((s, var.rsplit(" (", 1)[0]), {}).get("keda")
    return r


def ok(res):
    return res is not None and "error" not in res and "skipped" not in res


# bench/rpc_floor.cc under the same load: KEDA's three RPCs per poll answered from the metadata
# alone (no Kafka, no evaluation), with gRPC's callback API (klag-scaler's model until 2026-12-04) and its
# completion-queue API (klag-scaler's model since).
FLOORS = ("floor-callback", "floor-async", "floor-async-health")
FLOOR_NAMES = {"floor-callback": "gRPC floor: callback API + gRPC's health service (klag-scaler until 2026-12-04)",
               "floor-async": "gRPC floor: one completion queue, nothing else (klag-scaler's setup)",
               "floor-async-health": "gRPC floor: one completion queue + callback health service"}


def floor_note(by, s, k, r):
    """What the RPCs alone cost at S, next to klag-scaler's CPU per cycle (the 'why' of a missed
    CPU target)."""
    parts = []
    for f in FLOORS[:2]:
        fl = (by.get((s, BASE)) or {}).get(f)
        if ok(fl) and ok(r) and r.get("cpu_s_per_cycle"):
            parts.append(f"{FLOOR_NAMES[f]}: {fmt(fl.get('cpu_s_per_cycle'), 3)} s = "
                         f"{fl['cpu_s_per_cycle'] / r['cpu_s_per_cycle']:.2f}x")
    if not parts:
        return ""
    return ("the three RPCs per poll answered without Kafka on the same gRPC, same load: "
            + "; ".join(parts))


def section_floor(by):
    """CPU per cycle of every side of the S sweep, the floors included, and per RPC."""
    rows = []
    for (s, var), v in sorted(by.items(), key=lambda x: x[0][0] or 0):
        if var != BASE or not any(ok(v.get(f)) for f in FLOORS):
            continue
        r = v.get("keda")
        sides = [("KEDA kafka scaler (in process, no RPC)", r), ("klag-scaler", v.get("klag")),
                 ("klag-scaler, offsets-topic",
                  (by.get((s, BASE + " (--committed-offsets-source offsets-topic)")) or {}).get("klag"))]
        sides += [(FLOOR_NAMES[f], v.get(f)) for f in FLOORS]
        for name, res in sides:
            if not ok(res):
                continue
            cpu = res.get("cpu_s_per_cycle")
            rows.append([fmt(s), name, fmt(cpu, 3),
                         "" if name.startswith("KEDA") or not cpu else fmt(1e6 * cpu / (3 * s), 0),
                         ratio(cpu, (r or {}).get("cpu_s_per_cycle")) if ok(r) else "n/a",
                         fmt(res.get("peak_rss_mb")), fmt(res.get("threads")),
                         f"{fmt(lat(res, 'poll', 'p50_ms'), 2)} / {fmt(lat(res, 'poll', 'p99_ms'), 2)}"])
    if not rows:
        return ""
    return table(["S", "side", "CPU s per cycle", "CPU us per RPC", "x KEDA's CPU", "peak RSS MB",
                  "threads", "whole poll p50 / p99 ms"], rows)


def section_fanout(d):
    by = fanout_rows(d)
    if not by:
        return "Not run.", []
    order = sorted(by, key=lambda k: (k[1] != BASE, k[0] or 0, k[1]))
    rows = []
    for s, var in order:
        sides = [("klag-scaler", by[(s, var)].get("klag")), ("KEDA kafka scaler", by[(s, var)].get("keda"))]
        sides += [(FLOOR_NAMES[f], by[(s, var)][f]) for f in FLOORS if f in by[(s, var)]]
        for side, res in sides:
            if res is None and side.startswith("KEDA") and keda_of(by, s, var) is not None:
                continue  # KEDA's row is the variant's without the note
            if res is None:
                if side.startswith("KEDA") and var != BASE and "per group" not in var:
                    continue  # klag-only variant
                rows.append([fmt(s), var, side, "not run"] + [""] * 9)
                continue
            if "skipped" in res:
                rows.append([fmt(s), var, side, "not run: " + res["skipped"][:160]] + [""] * 9)
                continue
            if "error" in res:
                rows.append([fmt(s), var, side, "failed: " + res["error"].strip().splitlines()[-1][:120]] + [""] * 9)
                continue
            heavy = "GetMetricsAndActivity" if side.startswith("KEDA") else "GetMetrics"
            by_api = res.get("kafka_requests_per_cycle_by_api") or {}
            api_text = ", ".join(f"{a} {fmt(v)}" for a, v in sorted(by_api.items(), key=lambda x: -x[1]))
            rows.append([
                fmt(s), var, side,
                f"{fmt(lat(res, heavy, 'p50_ms'), 2)} / {fmt(lat(res, heavy, 'p99_ms'), 2)}",
                f"{fmt(lat(res, 'poll', 'p50_ms'), 2)} / {fmt(lat(res, 'poll', 'p99_ms'), 2)}",
                fmt(res.get("kafka_requests_per_cycle")) + (f" ({api_text})" if api_text else ""),
                fmt(res.get("peak_rss_mb")),
                fmt(res.get("cpu_s_per_cycle"), 3),
                fmt(res.get("threads")),
                f"{res.get('failed_polls', 0)} / {res.get('polls', 0)}",
                f"{res.get('interval_s')} s x {fmt(res.get('cycles'), 1)}",
                fmt(res.get("kafka_connections_opened")),
                f"{res.get('value_mismatches', 0)}",
            ])
    main = table(["S", "variant", "side", "metric call p50 / p99 ms", "whole poll p50 / p99 ms",
                  "Kafka requests per cycle", "peak RSS MB", "CPU s per cycle", "threads",
                  "failed / polls", "interval x cycles", "Kafka connections", "wrong values"], rows)

    rrows = []
    for s, var in order:
        k, r = by[(s, var)].get("klag"), keda_of(by, s, var)
        if not ok(k) or not ok(r):
            continue
        rrows.append([fmt(s), var,
                      ratio(lat(k, "poll", "p50_ms"), lat(r, "poll", "p50_ms")),
                      ratio(lat(k, "poll", "p99_ms"), lat(r, "poll", "p99_ms")),
                      ratio(k.get("kafka_requests_per_cycle"), r.get("kafka_requests_per_cycle")),
                      ratio(k.get("peak_rss_mb"), r.get("peak_rss_mb"), 3),
                      ratio(k.get("cpu_s_per_cycle"), r.get("cpu_s_per_cycle"))])
    ratios = table(["S", "variant", "poll p50", "poll p99", "Kafka requests per cycle", "peak RSS",
                    "CPU per cycle"], rrows)

    vrows = []
    for s, var in order:
        k = by[(s, var)].get("klag")
        if not ok(k):
            continue
        st = k.get("streams")
        if st:
            fa = st.get("first_answer") or {}
            vrows.append([fmt(s), var,
                          f"{st.get('opened')} opened, {st.get('first_answers')} first answers "
                          f"({st.get('first_true')} true) in {fmt(st.get('open_all_s'), 2)} s, first answer "
                          f"p50 / p99 {fmt(fa.get('p50_ms'), 1)} / {fmt(fa.get('p99_ms'), 1)} ms; "
                          f"{st.get('failed')} failed" + (f" ({st.get('first_error')[:100]})" if st.get("first_error") else "")])
        if k.get("dead"):
            codes = ", ".join(f"{c} {n}" for c, n in sorted((k.get("dead_codes") or {}).items()))
            vrows.append([fmt(s), var,
                          f"dead cluster's GetMetrics p50 / p99 / max {fmt(lat(k, 'dead_GetMetrics', 'p50_ms'), 1)} / "
                          f"{fmt(lat(k, 'dead_GetMetrics', 'p99_ms'), 1)} / {fmt(lat(k, 'dead_GetMetrics', 'max_ms'), 1)} ms "
                          f"({codes}); its GetMetricSpec p99 {fmt(lat(k, 'dead_GetMetricSpec', 'p99_ms'), 2)} ms; "
                          f"healthy cluster's whole poll p50 / p99 {fmt(lat(k, 'poll', 'p50_ms'), 2)} / "
                          f"{fmt(lat(k, 'poll', 'p99_ms'), 2)} ms"])
    variants = table(["S", "variant", "what happened"], vrows) if vrows else ""

    arows = []
    for s, var in order:
        k = by[(s, var)].get("klag")
        if not ok(k) or not k.get("data_age"):
            continue
        cells = []
        for kind in ("end", "committed"):
            a = k["data_age"].get(kind)
            cells.append("" if not a else
                         f"mean {fmt(a['mean_ms'], 1)} ms, p50 <= {fmt(a['p50_le_ms'], 0)} ms, "
                         f"p99 <= {fmt(a['p99_le_ms'], 0) if a['p99_le_ms'] >= 0 else 'over the largest bucket'} ms "
                         f"({fmt(a['count'])} evaluations)")
        ev = k.get("evaluations") or {}
        cells.append(", ".join(f"{o} {fmt(ev[o])}" for o in
                               ("fresh", "immediate", "reused", "reused_under_load", "joined") if o in ev))
        arows.append([fmt(s), var] + cells)
    ages = table(["S", "variant", "end offsets", "committed offsets",
                  "answers by source (whole run)"], arows) if arows else ""

    klag_rpc = []
    for s, var in order:
        k = by[(s, var)].get("klag")
        if ok(k):
            klag_rpc.append([fmt(s), var] + [f"{fmt(lat(k, kind, 'p50_ms'), 2)} / {fmt(lat(k, kind, 'p99_ms'), 2)} / {fmt(lat(k, kind, 'max_ms'), 1)}"
                                             for kind in ("GetMetricSpec", "GetMetrics", "IsActive")]
                            + [k.get("first_error", "")[:100]])
    rpc_table = table(["S", "variant", "GetMetricSpec p50 / p99 / max ms", "GetMetrics", "IsActive",
                       "first error"], klag_rpc)
    note = ("Latencies are per call as the load generator saw them, failed calls included; "
            "\"metric call\" is GetMetrics for klag-scaler and GetMetricsAndActivity for KEDA's code; "
            "a whole poll is GetMetricSpec + GetMetrics + IsActive (klag-scaler, over gRPC) or "
            "GetMetricSpecForScaling + GetMetricsAndActivity (KEDA's code, in process). Kafka requests "
            "are counted on the wire by kproxy. CPU, threads and peak RSS are the scaler process's alone (the "
            "load generator's gRPC client side is not counted). Variants: \"N ScaledJobs per group\" "
            "polls S triggers on S/N groups; \"+ N open StreamIsActive streams\" holds N streams "
            "open (first answer received) during the window; \"+ N ScaledJobs on a ... cluster\" polls N "
            "more triggers whose bootstrapServers refuse connections or accept and never answer; "
            "the row's figures are the healthy S's.")
    parts = [note, main, "Ratios, klag-scaler / KEDA (below 1 is better for klag):", ratios]
    floor = section_floor(by)
    if floor:
        parts += ["The RPCs alone (`bench/rpc_floor.cc`: the same three RPCs per poll, checked by "
                  "the same load generator, answered from the trigger metadata with no Kafka and "
                  "no evaluation, on the gRPC library klag-scaler links). \"One completion queue\" "
                  "answers on the one thread that polls the connection, as klag-scaler does (its "
                  "health service is on that queue too); \"callback API + gRPC's health service\" "
                  "was klag-scaler's setup until 2026-12-04; the last row adds gRPC's default health "
                  "service (a callback service in gRPC 1.51, whose threads then poll the "
                  "connection too). CPU per RPC is CPU per cycle / (3 x S):", floor]
    if variants:
        parts += ["Variants:", variants]
    if ages:
        parts += ["Age of the offsets behind klag-scaler's evaluations (evaluation time minus the "
                  "time the ListOffsets or OffsetFetch request was sent; histogram "
                  "klag_evaluation_data_age_seconds, whole run; an answer reused from the "
                  "evaluation window is up to --evaluation-window (500 ms here) older, one reused "
                  "under load up to --evaluation-window-under-load (10 s) older; the last column "
                  "is klag_scaler_evaluations_total by outcome):", ages]
    parts += ["klag-scaler per RPC:", rpc_table]
    return "\n\n".join(parts), fanout_pairs(d)


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
    pg = by.get("klag-job postgres")
    alone = (pg or {}).get("drain", {}).get("postgres_alone")
    if alone and alone.get("rows_per_s"):
        rt += (f"\n\nPostgreSQL alone (the same {fmt(alone['rows'])} rows exported from klag-job's "
               f"table and loaded again by psql with binary COPY into an empty table of the "
               f"same definition: no client work, no batches, no Kafka): one COPY "
               f"{fmt(alone['rows_per_s'])} rows/s in {fmt(alone['wall_s'], 2)} s")
        two = alone.get("two") or {}
        if two.get("rows_per_s"):
            rt += (f", two COPYs at once (half the partitions each) {fmt(two['rows_per_s'])} rows/s "
                   f"in {fmt(two['wall_s'], 2)} s")
        rt += (f". klag-job's postgres sink (its defaults: 2 connections, batches of 5,000) reaches "
               f"{ratio(pg['drain']['records_per_s'], alone['rows_per_s'])} of one COPY"
               + (f" and {ratio(pg['drain']['records_per_s'], two['rows_per_s'])} of two"
                  if two.get("rows_per_s") else ""))
        one = by.get("klag-job postgres 1 conn batch 500")
        if one:
            rt += (f"; with one connection and batches of 500 (the defaults before 2026-12-04) "
                   f"{fmt(one['drain']['records_per_s'])} rows/s; the defaults reach "
                   f"{ratio(pg['drain']['records_per_s'], one['drain']['records_per_s'])} of that")
        rt += "."
    elif alone:
        rt += f"\n\nPostgreSQL alone: not measured ({alone.get('error')})."

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
    """The figures issue 9 asks for, each with its verdict."""
    rows = []
    by = fanout_rows(d)

    def verdict(met):
        return "met" if met else "missed"

    def size_rows(name, s, k, r):
        if not ok(k):
            rows.append([f"{name}: fan-out", "klag-scaler run failed" if k else "not run", "missed",
                         (k or {}).get("error", "")[:200]])
            return
        failed = k.get("failed_polls", 0)
        rows.append([f"{name}: no failed poll", f"{failed} of {k.get('polls')} failed"
                     + (f" (first: {k.get('first_error', '')[:100]})" if failed else ""), verdict(failed == 0), ""])
        p50, p99 = lat(k, "poll", "p50_ms"), lat(k, "poll", "p99_ms")
        rows.append([f"{name}: whole poll p50 <= 1 ms, p99 <= 10 ms (over gRPC)",
                     f"p50 {fmt(p50, 2)} ms, p99 {fmt(p99, 2)} ms"
                     + (f" (KEDA's code in process: {fmt(lat(r, 'poll', 'p50_ms'), 2)} / {fmt(lat(r, 'poll', 'p99_ms'), 2)} ms)" if ok(r) else ""),
                     verdict(p50 is not None and p99 is not None and p50 <= 1 and p99 <= 10), ""])
        if not ok(r):
            why = ("not run" if not r else "not run: " + r["skipped"][:150] if "skipped" in r
                   else "failed: " + r["error"].strip().splitlines()[-1][:150])
            rows.append([f"{name}: ratios to KEDA's code", "KEDA's side " + why, "n/a", ""])
            return
        cpu = (k.get("cpu_s_per_cycle") or 0) / (r.get("cpu_s_per_cycle") or float("inf"))
        rows.append([f"{name}: CPU per cycle <= 0.5x KEDA's",
                     f"{fmt(k.get('cpu_s_per_cycle'), 3)} vs {fmt(r.get('cpu_s_per_cycle'), 3)} s = {cpu:.2f}x",
                     verdict(cpu <= 0.5), "" if cpu <= 0.5 else floor_note(by, s, k, r)])
        kr, rr = k.get("kafka_requests_per_cycle") or 0, r.get("kafka_requests_per_cycle") or 0
        by_api = k.get("kafka_requests_per_cycle_by_api") or {}
        rows.append([f"{name}: Kafka requests per cycle <= 0.4x KEDA's",
                     f"{fmt(kr)} vs {fmt(rr)} = {kr / rr:.2f}x (" +
                     ", ".join(f"{a} {fmt(v)}" for a, v in sorted(by_api.items(), key=lambda x: -x[1])) + ")",
                     verdict(rr > 0 and kr <= 0.4 * rr), ""])
        krss, rrss = k.get("peak_rss_mb") or 0, r.get("peak_rss_mb") or 0
        rows.append([f"{name}: peak RSS <= 5% of KEDA's",
                     f"{fmt(krss)} vs {fmt(rrss)} MB = {100 * krss / rrss:.1f}%" if rrss else "n/a",
                     verdict(rrss > 0 and krss <= 0.05 * rrss), ""])

    for s, k, r in pairs:
        size_rows(f"S = {fmt(s)}", s, k, r)
    # The same figures for klag-only refinements of the base rows ("distinct groups (--flag)"),
    # against KEDA's base row of that size.
    for (s, var), v in sorted(by.items(), key=lambda x: (x[0][0] or 0, x[0][1])):
        if var.startswith(BASE + " (") and v.get("klag") is not None:
            size_rows(f"S = {fmt(s)}, {var[len(BASE) + 2:-1]}", s, v.get("klag"), keda_of(by, s, var))

    for (s, var), v in sorted(by.items(), key=lambda x: (x[0][0] or 0, x[0][1])):
        k = v.get("klag")
        refinement = var.startswith(BASE + " (")  # rows above
        if var == BASE or refinement or not ok(k):
            if var != BASE and not refinement and k is not None and not ok(k):
                rows.append([f"S = {fmt(s)}, {var}", "run failed: " + k["error"].strip().splitlines()[-1][:150], "missed", ""])
            continue
        if k.get("share", 1) > 1:
            of = (k.get("kafka_requests_per_cycle_by_api") or {}).get("OffsetFetch", 0)
            groups = k.get("groups") or 0
            rows.append([f"S = {fmt(s)}, {var}: one OffsetFetch per group per poll, not per ScaledJob",
                         f"OffsetFetch {fmt(of)} per cycle for {fmt(groups)} groups and {fmt(s)} ScaledJobs",
                         verdict(groups > 0 and of <= 1.5 * groups), ""])
        if k.get("streams"):
            st = k["streams"]
            n = int(var.split()[1]) if var.startswith("+ ") else st.get("opened")
            met = st.get("first_answers") == n and st.get("failed") == 0 and k.get("failed_polls", 0) == 0
            rows.append([f"S = {fmt(s)}, {var}: streams held, polls unaffected",
                         f"{st.get('first_answers')} of {n} streams answered, {st.get('failed')} failed; "
                         f"{k.get('failed_polls', 0)} failed polls, whole poll p99 {fmt(lat(k, 'poll', 'p99_ms'), 2)} ms, "
                         f"{fmt(k.get('threads'))} threads", verdict(met), ""])
        if k.get("dead"):
            dead99 = lat(k, "dead_GetMetrics", "p99_ms") or 0
            refused = k.get("dead_mode") == "refused"
            met = k.get("failed_polls", 0) == 0 and (lat(k, "poll", "p99_ms") or 1e9) <= 10
            if refused:
                met = met and dead99 < 1000
            rows.append([f"S = {fmt(s)}, {var}: the healthy cluster keeps its latency"
                         + ("; the refused one answers UNAVAILABLE in well under the deadline" if refused else ""),
                         f"healthy whole poll p99 {fmt(lat(k, 'poll', 'p99_ms'), 2)} ms, {k.get('failed_polls', 0)} failed; "
                         f"dead cluster's GetMetrics p99 {fmt(dead99, 1)} ms ({', '.join(f'{c} {n}' for c, n in sorted((k.get('dead_codes') or {}).items()))})",
                         verdict(met), ""])

    if job_by:
        k, kc = job_by.get("klag-job jsonl"), job_by.get("kcat")
        pg = job_by.get("klag-job postgres")
        if k and kc:
            x = k["drain"]["records_per_s"] / kc["drain"]["records_per_s"]
            rows.append(["klag-job jsonl >= 1.0x kcat's records/s",
                         f"{fmt(k['drain']['records_per_s'])} vs {fmt(kc['drain']['records_per_s'])} records/s = {x:.2f}x",
                         verdict(x >= 1.0), ""])
            y = k["drain"]["peak_rss_mb"] / kc["drain"]["peak_rss_mb"]
            rows.append(["klag-job jsonl peak RSS <= kcat's",
                         f"{fmt(k['drain']['peak_rss_mb'])} vs {fmt(kc['drain']['peak_rss_mb'])} MB = {y:.2f}x",
                         verdict(y <= 1.0), ""])
        if pg:
            rate = pg["drain"]["records_per_s"]
            alone = pg["drain"].get("postgres_alone") or {}
            ceiling = (f"; PostgreSQL alone (one COPY, no client) {fmt(alone['rows_per_s'])} rows/s"
                       f" = {alone['rows_per_s'] / 24000:.1f}x" if alone.get("rows_per_s") else "")
            two = alone.get("two") or {}
            if two.get("rows_per_s"):
                ceiling += (f", two COPYs at once {fmt(two['rows_per_s'])} rows/s"
                            f" = {two['rows_per_s'] / 24000:.1f}x")
            rows.append(["PostgreSQL sink >= 10x the 24,000 rows/s issue 9 measured (240,000 rows/s)",
                         f"{fmt(rate)} rows/s = {rate / 24000:.1f}x{ceiling}", verdict(rate >= 240000), ""])
        if k:
            ms = k["nowork_median_s"] * 1000
            rows.append(["klag-job no-work exit <= 100 ms", f"{ms:.0f} ms (median, start to exit)",
                         verdict(ms <= 100), ""])
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
`--only micro,fanout,job`, `--sizes 100,1000` and `--variant-s 0` run a subset.

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
  GetMetricSpecForScaling and GetMetricsAndActivity. Each S runs klag-scaler twice: with its
  defaults (committed offsets by an OffsetFetch per evaluation) and with
  `--committed-offsets-source offsets-topic` (one reader of `__consumer_offsets` per cluster,
  committed offsets at most `--end-offsets-max-age` old), both against KEDA's row of that S,
  then `klag_rpc_floor` (`bench/rpc_floor.cc`) three times under the same load: the three RPCs
  answered from the trigger metadata alone, the CPU they cost before any lag is computed, with
  the callback API and gRPC's health service (klag-scaler's setup until 2026-12-04), with one
  completion queue and nothing else (klag-scaler's setup since), and with that queue beside
  gRPC's callback health service.
  After the S sweep (1,000, 5,000, 10,000), variants at S = 1,000: 10 ScaledJobs per group (both sides: one group's OffsetFetch
  should serve its ten triggers; klag-scaler twice more, with `--committed-offsets-max-age 1s`
  and with it set to the poll interval, which let the triggers of one group share a committed
  read up to that old, and with `--committed-offsets-source offsets-topic`, compared with KEDA's
  row of the same variant), 1,000 StreamIsActive streams held open while the ScaledJobs
  poll (klag-scaler only), and 1,000 more ScaledJobs on a dead cluster beside the healthy one,
  first one that refuses connections, then one that accepts and never answers (klag-scaler
  only; the healthy ScaledJobs' figures are the row's, the dead ones' are under Variants). The interval is compressed (1-5 s instead of
  30 s); klag-scaler runs with `--evaluation-window 500ms` so that no poll reuses the previous
  poll's evaluation. Both sides talk to the broker through `kproxy`, a proxy that counts Kafka
  requests per API on the wire (klag-scaler does not expose its own counters yet). CPU seconds
  and peak RSS (VmHWM) are those of the klag-scaler process, or of the keda-ref process.
- **Job** (`bench/job/jobbench.py`): `klag-produce` writes the records; klag-job (jsonl sink to
  /dev/null, and the postgres sink with its defaults and with one connection and batches of 500), `kcat -G ... -e` (auto-commit, committed on close) and
  `bench/job/py_consumer.py` (confluent-kafka: batches of 500, one JSON line per record like
  klag-job's jsonl sink, commit per batch) each drain the topic with their own group; every drain
  is checked (committed offsets equal the end offsets; the postgres table holds every record).
  wait4() gives peak RSS and CPU. Then each runs again on its drained group: the no-work exit.
- **Lag evaluation cost** (`bench/lag_bench.cc`, `klag_lag_bench`): Google Benchmark of the
  pure code, at P = 12, 1,000 and 10,000 partitions.
"""


def section_threads(r):
    """klag-scaler's CPU by thread kind (bench/run.sh reads /proc/PID/task/*/stat before it stops
    each klag-scaler)."""
    files = sorted(glob.glob(os.path.join(r, "threads-*.txt")))
    if not files:
        return ""
    parts = ["### Where klag-scaler's CPU goes, by thread\n\n"
             "Read from `/proc/PID/task/*/stat` just before each klag-scaler of this run stopped: "
             "user + system seconds over the process's life, threads of one kind (a name less its "
             "trailing digits) added up, those with any CPU listed. `klag-grpc-cq` polls the "
             "completion queue and answers every RPC whose evaluation can be answered at once; "
             "`klag-kafka-work` runs the evaluations that wait for Kafka; `rdk:*` are librdkafka's "
             "threads; `klag-end-offset` refreshes the end-offset snapshot; `klag-offsets-tp` "
             "reads `__consumer_offsets`."]
    for f in files:
        with open(f) as fh:
            lines = [line.rstrip() for line in fh]
        kept = [line for line in lines if line.startswith("#") or not line.strip().startswith("0.00 s")]
        parts.append("```\n" + "\n".join(kept) + "\n```")
    return "\n\n".join(parts)


def section_profile(r):
    """The flat perf reports of a `bench/run.sh --perf` run, as recorded."""
    files = sorted(glob.glob(os.path.join(r, "perf-*.txt")))
    if not files:
        return "No perf-*.txt in " + r + "."
    env = read_json(os.path.join(r, "env.json"), {})
    load = read_jsonl(os.path.join(r, "load.jsonl"))
    parts = [f"From `bench/run.sh --only fanout --perf` (results `.cache/bench/{os.path.basename(os.path.normpath(r))}/`, "
             f"klag {env.get('klag_rev', '?')}; load average at each phase: "
             + ", ".join(f"{p['phase']} {p['load'].split()[0]}" for p in load)
             + "). `perf record -F 499 -a` samples every process on the machine while the load "
             "generator polls; the first table splits them by process, the next ones break the "
             "scaler's own samples down by library and symbol (no call graphs). Profiling adds "
             "its own cost: these runs' latency figures are not the ones above. What the "
             "profile says about the missed targets: bench/README.md."]
    for f in files:
        with open(f) as fh:
            parts.append("```\n" + fh.read().rstrip() + "\n```")
    return "\n\n".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--doc", default="")
    ap.add_argument("--profile", default="",
                    help="results directory of a separate `bench/run.sh --perf` run: its perf-*.txt "
                         "reports become section 4")
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
        "## Targets of issue 9",
        targets(d, pairs, job_by),
        "## 1. Scaler fan-out: many ScaledJobs on one cluster (P = 12)",
        fan_text,
        section_threads(r),
        "## 2. The Job: drain throughput, start-up, memory",
        job_text,
        "## 3. Lag evaluation cost (micro-benchmarks)",
        section_micro(d),
    ] + (["## 4. Where klag-scaler's CPU goes (perf, a separate run)", section_profile(args.profile)]
         if args.profile else []))
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
