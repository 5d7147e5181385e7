// Package layout is the benchmark's data set on the broker, shared by ksetup (which creates it),
// bench/fanout (klag-scaler) and bench/keda-ref (KEDA's kafka scaler), so that every side polls
// the same groups on the same topics and can check the lag it reports.
//
// Group g (0 <= g < groups) is "<prefix>g<g>" on topic "<prefix>t<g % topics>"; every topic has
// P partitions holding `Records` records each, and group g has committed offset 10 + g%50 on
// each of them, so its lag is P * (Records - 10 - g%50).
//
// Triggers map to groups: trigger i polls group i / Share (Share 0 or 1: trigger i is group i),
// so Share = K models K ScaledJobs consuming one group on one topic.
package layout

import "fmt"

// Layout of topics and groups.
type Layout struct {
	Prefix     string
	Topics     int
	Partitions int
	Records    int // per partition
	Share      int // triggers per group (0 or 1: one each)
}

// GroupOf is the group index trigger i polls.
func (l Layout) GroupOf(i int) int {
	if l.Share > 1 {
		return i / l.Share
	}
	return i
}

// Topic of group g.
func (l Layout) Topic(g int) string { return fmt.Sprintf("%st%d", l.Prefix, g%l.Topics) }

// TopicName of topic t.
func (l Layout) TopicName(t int) string { return fmt.Sprintf("%st%d", l.Prefix, t) }

// Group name of group g.
func (l Layout) Group(g int) string { return fmt.Sprintf("%sg%d", l.Prefix, g) }

// Committed offset of group g on each of its partitions.
func (l Layout) Committed(g int) int64 { return int64(10 + g%50) }

// Lag of group g over its topic.
func (l Layout) Lag(g int) int64 {
	return int64(l.Partitions) * (int64(l.Records) - l.Committed(g))
}

// TriggerMetadata is the metadata of trigger i's `kafka` trigger (on group GroupOf(i)) (as KEDA forwards it to an
// external scaler, scalerAddress included when non-empty). lagThreshold is set so that no cap
// applies: the metric is the lag itself on both sides.
func (l Layout) TriggerMetadata(i int, bootstrap, scalerAddress string) map[string]string {
	g := l.GroupOf(i)
	md := map[string]string{
		"bootstrapServers":  bootstrap,
		"consumerGroup":     l.Group(g),
		"topic":             l.Topic(g),
		"lagThreshold":      fmt.Sprint(l.Records),
		"offsetResetPolicy": "latest",
	}
	if scalerAddress != "" {
		md["scalerAddress"] = scalerAddress
	}
	return md
}
