// The final one-line JSON summary of a Job run (klag-job prints it on stdout, or on stderr when
// the jsonl sink writes stdout):
//
//   {"exit_reason":"drained","exit_code":0,"group":"g","records":1000,"bytes":52000,
//    "dead_lettered":0,"batches":2,"duration_s":3.2,
//    "partitions":[{"topic":"t","partition":0,"start":0,"end":500,"committed_before":null,
//                   "committed":500,"records":500}, ...]}
//
// "error" is added for exit_reason "failed". "start" is where the Job began reading, "end" the
// end offset at assignment (where its work stops), "committed" the last offset it committed
// (null when it committed nothing).
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "job/drain.h"

namespace klag::job {

std::string SummaryJson(const DrainReport& report, absl::string_view group);

}  // namespace klag::job
