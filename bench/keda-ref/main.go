// Command keda-ref is the reference side of klag's fan-out benchmark: KEDA's own `kafka`
// scaler code (github.com/kedacore/keda/v2/pkg/scalers at v2.20.2, from the Go module proxy,
// not copied), driven the way KEDA's operator drives it for ScaledJobs: one scaler instance per
// trigger, built through KEDA's public constructor (scalers.NewKafkaScaler with a ScalerConfig
// holding the trigger metadata), and every polling interval GetMetricSpecForScaling then
// GetMetricsAndActivity for each, each ScaledJob from its own goroutine. It measures the same
// window, with the same code (bench/fanout/pollloop), as bench/fanout does for klag-scaler, and
// prints one JSON line.
//
//	keda-ref --bootstrap 127.0.0.1:P1,127.0.0.1:P2 --proxy-stats URL1,URL2 --S 1000 \
//	  --interval 2s --warmup 1 --cycles 5
//
// With several --bootstrap addresses (kproxy instances in front of one broker), trigger g uses
// address g % n: each scaler has its own client anyway, and one proxy process can hold only
// so many connections. Each GetMetricsAndActivity value is checked against the group's lag.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/klag/klag/bench/fanout/layout"
	"github.com/klag/klag/bench/fanout/pollloop"
)

func main() {
	bootstrap := flag.String("bootstrap", "", "comma-separated broker (or kproxy) addresses; trigger g uses the (g % n)th (required)")
	proxyStats := flag.String("proxy-stats", "", "comma-separated kproxy /stats URLs")
	s := flag.Int("S", 10, "ScaledJobs (triggers, groups)")
	interval := flag.Duration("interval", 2*time.Second, "polling interval (compressed)")
	warmup := flag.Int("warmup", 1, "cycles before the measured window")
	cycles := flag.Int("cycles", 3, "measured cycles")
	prefix := flag.String("prefix", "fan-", "topic and group prefix (as given to ksetup)")
	topics := flag.Int("topics", 100, "topics (as given to ksetup)")
	partitions := flag.Int("partitions", 12, "partitions per topic")
	records := flag.Int("records", 100, "records per partition")
	share := flag.Int("share", 1, "ScaledJobs per consumer group (trigger i polls group i/share)")
	createParallel := flag.Int("create-parallel", 32, "scalers constructed concurrently (the operator builds them as ScaledJobs reconcile)")
	flag.Parse()
	if *bootstrap == "" {
		fmt.Fprintln(os.Stderr, "keda-ref: --bootstrap is required")
		os.Exit(2)
	}
	// KEDA's scalers log through controller-runtime's logger; the operator's default level drops
	// their V(1) lines, which is what Discard does here (and no "SetLogger never called" warning).
	logf.SetLogger(logr.Discard())
	groups := (*s + max(*share, 1) - 1) / max(*share, 1)
	l := layout.Layout{Prefix: *prefix, Topics: min(*topics, groups), Partitions: *partitions,
		Records: *records, Share: *share}
	variant := "distinct groups"
	if *share > 1 {
		variant = fmt.Sprintf("%d ScaledJobs per group", *share)
	}
	addrs := strings.Split(*bootstrap, ",")
	ctx := context.Background()

	// One scaler per trigger, as the operator caches them (pkg/scaling/cache).
	built := time.Now()
	ss := make([]scalers.Scaler, *s)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var buildErr error
	work := make(chan int)
	for w := 0; w < *createParallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range work {
				sc, err := scalers.NewKafkaScaler(ctx, &scalersconfig.ScalerConfig{
					ScalableObjectName:      fmt.Sprintf("sj-%d", g),
					ScalableObjectNamespace: "bench",
					ScalableObjectType:      "ScaledJob",
					TriggerType:             "kafka",
					TriggerIndex:            0,
					TriggerMetadata:         l.TriggerMetadata(g, addrs[g%len(addrs)], ""),
					ResolvedEnv:             map[string]string{},
					AuthParams:              map[string]string{},
					GlobalHTTPTimeout:       3 * time.Second,
				})
				mu.Lock()
				if err != nil && buildErr == nil {
					buildErr = fmt.Errorf("scaler %d: %w", g, err)
				}
				ss[g] = sc
				mu.Unlock()
			}
		}()
	}
	for g := 0; g < *s; g++ {
		work <- g
	}
	close(work)
	wg.Wait()
	if buildErr != nil {
		fmt.Fprintf(os.Stderr, "keda-ref: %v\n", buildErr)
		os.Exit(1)
	}
	buildSeconds := time.Since(built).Seconds()

	var mismatches atomic.Int64
	poll := func(ctx context.Context, g int, rec *pollloop.Recorder) error {
		sc := ss[g]
		pollStart := time.Now()
		defer func() { rec.Add("poll", time.Since(pollStart)) }()
		t := time.Now()
		specs := sc.GetMetricSpecForScaling(ctx)
		rec.Add("GetMetricSpecForScaling", time.Since(t))
		for _, spec := range specs {
			t = time.Now()
			metrics, active, err := sc.GetMetricsAndActivity(ctx, spec.External.Metric.Name)
			rec.Add("GetMetricsAndActivity", time.Since(t))
			if err != nil {
				return fmt.Errorf("GetMetricsAndActivity: %w", err)
			}
			var value int64
			for _, m := range metrics {
				value += m.Value.MilliValue() / 1000
			}
			if want := l.Lag(l.GroupOf(g)); value != want || !active {
				mismatches.Add(1)
				return fmt.Errorf("group %s: metric %d active %v, want %d true", l.Group(l.GroupOf(g)), value, active, want)
			}
		}
		return nil
	}
	var stats []string
	if *proxyStats != "" {
		stats = strings.Split(*proxyStats, ",")
	}
	res, err := pollloop.Run(ctx, pollloop.Config{S: *s, Interval: *interval, Warmup: *warmup,
		Cycles: *cycles, ProxyStats: stats, Seed: 1}, poll)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keda-ref: %v\n", err)
		os.Exit(1)
	}
	out := struct {
		Side string `json:"side"`
		*pollloop.Result
		Variant         string  `json:"variant"`
		Share           int     `json:"share"`
		Groups          int     `json:"groups"`
		P               int     `json:"P"`
		Topics          int     `json:"topics"`
		ValueMismatches int64   `json:"value_mismatches"`
		BuildSeconds    float64 `json:"scalers_built_s"`
	}{"keda", res, variant, max(*share, 1), groups, *partitions, l.Topics, mismatches.Load(), buildSeconds}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	for _, sc := range ss {
		_ = sc.Close(ctx)
	}
}
