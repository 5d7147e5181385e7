// Command fanout behaves like the KEDA operator in front of klag-scaler: S ScaledJobs, each
// with one `type: external` trigger on its own consumer group (package layout), each polled
// every --interval from its own goroutine with KEDA's calls for a ScaledJob poll
// (GetMetricSpec, then GetMetrics for the returned metric, then IsActive), all over one shared
// gRPC connection, with KEDA's own generated client. It measures one window of polls with
// package pollloop and prints the result as one JSON line.
//
//	fanout --addr 127.0.0.1:6000 --bootstrap 127.0.0.1:PROXY --pid $(pidof klag-scaler) \
//	  --proxy-stats http://127.0.0.1:P2/stats --S 1000 --interval 2s --warmup 1 --cycles 5
//
// The check: every GetMetrics value must equal the group's lag and IsActive must be true;
// mismatches are counted (value_mismatches) and a poll with one fails.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/klag/klag/bench/fanout/layout"
	"github.com/klag/klag/bench/fanout/pollloop"
)

func main() {
	addr := flag.String("addr", "", "klag-scaler gRPC address (required)")
	bootstrap := flag.String("bootstrap", "", "bootstrapServers in the trigger metadata (required)")
	pid := flag.Int("pid", 0, "klag-scaler's process id, for CPU and peak RSS (required)")
	proxyStats := flag.String("proxy-stats", "", "comma-separated kproxy /stats URLs")
	s := flag.Int("S", 10, "ScaledJobs (triggers, groups)")
	interval := flag.Duration("interval", 2*time.Second, "polling interval (compressed)")
	warmup := flag.Int("warmup", 1, "cycles before the measured window")
	cycles := flag.Int("cycles", 3, "measured cycles")
	prefix := flag.String("prefix", "fan-", "topic and group prefix (as given to ksetup)")
	topics := flag.Int("topics", 100, "topics (as given to ksetup)")
	partitions := flag.Int("partitions", 12, "partitions per topic")
	records := flag.Int("records", 100, "records per partition")
	rpcTimeout := flag.Duration("rpc-timeout", 30*time.Second, "deadline of each RPC (KEDA sets none for ScaledJobs)")
	flag.Parse()
	if *addr == "" || *bootstrap == "" || *pid == 0 {
		fmt.Fprintln(os.Stderr, "fanout: --addr, --bootstrap and --pid are required")
		os.Exit(2)
	}
	l := layout.Layout{Prefix: *prefix, Topics: min(*topics, *s), Partitions: *partitions, Records: *records}

	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "fanout: %v\n", err)
		os.Exit(1)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)

	refs := make([]*pb.ScaledObjectRef, *s)
	for g := range refs {
		refs[g] = &pb.ScaledObjectRef{Name: fmt.Sprintf("sj-%d", g), Namespace: "bench",
			ScalerMetadata: l.TriggerMetadata(g, *bootstrap, *addr)}
	}
	var mismatches atomic.Int64
	poll := func(ctx context.Context, g int, rec *pollloop.Recorder) error {
		ctx, cancel := context.WithTimeout(ctx, *rpcTimeout)
		defer cancel()
		ref := refs[g]
		pollStart := time.Now()
		defer func() { rec.Add("poll", time.Since(pollStart)) }()
		t := time.Now()
		spec, err := client.GetMetricSpec(ctx, ref)
		rec.Add("GetMetricSpec", time.Since(t))
		if err != nil {
			return fmt.Errorf("GetMetricSpec: %w", err)
		}
		for _, ms := range spec.MetricSpecs {
			t = time.Now()
			m, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: ms.MetricName})
			rec.Add("GetMetrics", time.Since(t))
			if err != nil {
				return fmt.Errorf("GetMetrics: %w", err)
			}
			t = time.Now()
			active, err := client.IsActive(ctx, ref)
			rec.Add("IsActive", time.Since(t))
			if err != nil {
				return fmt.Errorf("IsActive: %w", err)
			}
			var value float64
			for _, v := range m.MetricValues {
				value += math.Max(v.MetricValueFloat, float64(v.MetricValue))
			}
			if int64(value) != l.Lag(g) || !active.Result {
				mismatches.Add(1)
				return fmt.Errorf("group %s: metric %v active %v, want %d true", l.Group(g), value,
					active.Result, l.Lag(g))
			}
		}
		return nil
	}
	var stats []string
	if *proxyStats != "" {
		stats = strings.Split(*proxyStats, ",")
	}
	res, err := pollloop.Run(context.Background(), pollloop.Config{S: *s, Interval: *interval,
		Warmup: *warmup, Cycles: *cycles, PID: *pid, ProxyStats: stats, Seed: 1}, poll)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fanout: %v\n", err)
		os.Exit(1)
	}
	out := struct {
		Side string `json:"side"`
		*pollloop.Result
		P               int   `json:"P"`
		Topics          int   `json:"topics"`
		ValueMismatches int64 `json:"value_mismatches"`
	}{"klag", res, *partitions, l.Topics, mismatches.Load()}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
