#include "kafka/end_offset_history.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace klag::kafka {
namespace {

// Twice the area of the triangle a-b-c in (time, offset) space. The ranking of points by area
// does not depend on the units of either axis (scaling one scales every area alike), and the
// area is the time error summed over the offsets between a and c that dropping b introduces.
double TwiceArea(const EndOffsetHistory::Point& a, const EndOffsetHistory::Point& b,
                 const EndOffsetHistory::Point& c) {
  const double abt = static_cast<double>(b.unix_nanos - a.unix_nanos);
  const double abe = static_cast<double>(b.end - a.end);
  const double act = static_cast<double>(c.unix_nanos - a.unix_nanos);
  const double ace = static_cast<double>(c.end - a.end);
  return std::abs(abt * ace - act * abe);
}

}  // namespace

EndOffsetHistory::EndOffsetHistory(int max_points)
    : max_points_(static_cast<size_t>(std::max(max_points, kMinPoints))) {}

void EndOffsetHistory::Add(int64_t end, absl::Time time) {
  const Point point{.end = end, .unix_nanos = absl::ToUnixNanos(time)};
  if (!points_.empty()) {
    if (point.unix_nanos <= points_.back().unix_nanos) return;  // out of order
    if (point.end < points_.back().end) points_.clear();        // recreated or truncated
  }
  const size_t n = points_.size();
  if (n >= 2 && point.end == points_[n - 1].end && point.end == points_[n - 2].end) {
    points_.back().unix_nanos = point.unix_nanos;  // extend the flat stretch
    return;
  }
  if (n >= max_points_) {
    // Drop the interior point (of the table with the new point appended) whose triangle is the
    // smallest; the new point is the last, so it is never the one dropped, nor is the oldest.
    size_t drop = 1;
    double smallest = std::numeric_limits<double>::infinity();
    for (size_t i = 1; i < n; ++i) {
      const Point& next = i + 1 < n ? points_[i + 1] : point;
      const double area = TwiceArea(points_[i - 1], points_[i], next);
      if (area < smallest) {
        smallest = area;
        drop = i;
      }
    }
    points_.erase(points_.begin() + static_cast<std::ptrdiff_t>(drop));
  } else if (points_.size() == points_.capacity()) {
    // Grow by doubling, but never past the bound.
    points_.reserve(std::min(max_points_, std::max<size_t>(2, 2 * points_.capacity())));
  }
  points_.push_back(point);
}

std::optional<absl::Time> EndOffsetHistory::TimeOf(int64_t offset) const {
  if (points_.empty() || offset >= points_.back().end) return std::nullopt;
  // The record at `offset` exists once the end reaches offset + 1 (no overflow: offset < end).
  const int64_t target = offset + 1;
  const Point& oldest = points_.front();
  if (target <= oldest.end) {
    // Appended before the history starts.
    const Point& newest = points_.back();
    const absl::Time oldest_time = absl::FromUnixNanos(oldest.unix_nanos);
    if (newest.end == oldest.end) return oldest_time;  // no rate to extrapolate with
    const double nanos_per_record = static_cast<double>(newest.unix_nanos - oldest.unix_nanos) /
                                    static_cast<double>(newest.end - oldest.end);
    const double back = nanos_per_record * static_cast<double>(oldest.end - target);
    // back >= 0: never later than oldest_time. A slow table and a far offset can reach back
    // centuries; no record is older than the Unix epoch (Kafka timestamps are not negative).
    return std::max(oldest_time - absl::Nanoseconds(back), absl::UnixEpoch());
  }
  // The first point whose end reached the target; the one before it is below the target, so the
  // segment between them rises.
  auto after = std::lower_bound(points_.begin(), points_.end(), target,
                                [](const Point& p, int64_t t) { return p.end < t; });
  const Point& b = *after;
  const Point& a = *(after - 1);
  const double fraction = static_cast<double>(target - a.end) / static_cast<double>(b.end - a.end);
  return absl::FromUnixNanos(a.unix_nanos) +
         absl::Nanoseconds(fraction * static_cast<double>(b.unix_nanos - a.unix_nanos));
}

}  // namespace klag::kafka
