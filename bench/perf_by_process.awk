# Reads `perf script -F pid,comm` lines ("comm pid"; a thread name may hold spaces) and prints
# each process's share of all samples, with its threads' names and shares (those of 1% or more).
# bench/run.sh --perf uses it; so can anyone with a perf.data:
#   perf script -i perf.data -F pid,comm | awk -f bench/perf_by_process.awk | sort -rn
{
  pid = $NF
  $NF = ""
  sub(/ +$/, "")
  n[pid]++
  c[pid, $0]++
  t++
  if (!((pid, $0) in seen)) {
    seen[pid, $0] = 1
    names[pid] = names[pid] SUBSEP $0
  }
}
END {
  for (p in n) {
    k = split(substr(names[p], 2), list, SUBSEP)
    label = ""
    for (i = 1; i <= k; i++) {
      share = 100 * c[p, list[i]] / t
      if (share >= 1) label = label (label == "" ? "" : ", ") list[i] " " sprintf("%.1f%%", share)
    }
    printf "%6.2f%%  pid %s%s\n", 100 * n[p] / t, p, label == "" ? "" : " (" label ")"
  }
}
