// A bounded history of one partition's end offset over time, for estimating when a record was
// produced from the end offsets alone ("lag in seconds" without reading records).
//
//   EndOffsetHistory history(/*max_points=*/32);
//   history.Add(100, t0);
//   history.Add(140, t0 + absl::Seconds(2));
//   std::optional<absl::Time> produced = history.TimeOf(119);  // t0 + 1 s
//
// The approach is kafka-lag-exporter's (lightbend/kafka-lag-exporter, LookupTable.scala: a table
// of (offset, time) points per partition, a flat stretch compressed to its first and last point,
// linear interpolation between the two points around the looked-up offset). It differs in three
// ways: a full table drops the point whose removal loses least (Visvalingam's smallest triangle)
// instead of the oldest, so the table keeps covering the oldest offsets it has seen at a coarser
// resolution; an offset older than the table is extrapolated but never later than the oldest
// point (kafka-lag-exporter extrapolates along the table's trend line without a bound); and an end
// offset that goes backwards resets the table (kafka-lag-exporter ignores the point, so a
// recreated topic would keep the old topic's times until the new one catches up).
//
// The curve between two points is a straight line, so the estimate's error is at most the time
// between the two samples around the offset (records produced in a burst just after the earlier
// sample are estimated later than they were, spread evenly over the gap).
//
// Not thread-safe (EndOffsetsCache guards it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/time/time.h"

namespace klag::kafka {

class EndOffsetHistory {
 public:
  // Default number of points kept per partition.
  static constexpr int kDefaultMaxPoints = 32;
  // The smallest table that keeps a flat stretch (two points) and the rise after it.
  static constexpr int kMinPoints = 3;

  // Keeps at most max(max_points, kMinPoints) points. Storage grows as points arrive (a
  // partition whose end never moves holds two).
  explicit EndOffsetHistory(int max_points = kDefaultMaxPoints);

  // Records that the end offset was `end` at `time`. A sample not newer than the newest point is
  // ignored (a fetch that returned after a later one). An end below the newest point's (the topic
  // was recreated or its log truncated) clears the history first. An end equal to the two newest
  // points' moves the newest point's time (a flat stretch stays two points: first and last seen).
  // When the table is full, the interior point whose removal changes the curve least (the
  // smallest triangle with its neighbours) is dropped; the oldest and newest points never are.
  void Add(int64_t end, absl::Time time);

  // Estimated time at which the end offset moved past `offset`, i.e. when the record at `offset`
  // was appended: the time the piecewise-linear curve through the points reaches offset + 1.
  //   - offset >= the newest end (nothing at or after `offset` has been seen): nullopt;
  //   - offset below the oldest point's end (produced before the history starts): extrapolated
  //     back from the oldest point along the table's average rate (oldest to newest point) when
  //     the table rose at all, otherwise the oldest point's time; never later than the oldest
  //     point's time (so the age it gives is a lower bound when the rate is unknown), never
  //     before the Unix epoch;
  //   - no points: nullopt.
  std::optional<absl::Time> TimeOf(int64_t offset) const;

  // Drops every point.
  void Clear() { points_.clear(); }

  size_t size() const { return points_.size(); }
  bool empty() const { return points_.empty(); }
  // Bytes of storage held for points (capacity, not size).
  size_t MemoryBytes() const { return points_.capacity() * sizeof(Point); }

  struct Point {
    int64_t end = 0;
    int64_t unix_nanos = 0;  // absl::Time is 12 bytes padded to 16; this keeps a point at 16
  };
  // Oldest first (for tests and debugging).
  const std::vector<Point>& points() const { return points_; }

 private:
  size_t max_points_;
  std::vector<Point> points_;
};

}  // namespace klag::kafka
