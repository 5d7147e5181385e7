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
//
// Variants (one per run, reported in "variant"):
//
//	--share K      K ScaledJobs per consumer group (trigger i polls group i/K; layout.Share)
//	--streams N    N StreamIsActive streams (ScaledObjects with external-push triggers) are
//	               opened before the window and held open while the ScaledJobs poll; each must
//	               get its first answer (true) and stay open
//	--dead N       N more ScaledJobs (namespace bench-dead) on a second, dead cluster polled the
//	               same way: --dead-mode refused (connections refused) or blackhole (accepted,
//	               never answered). GetMetricSpec must succeed (it never touches Kafka); GetMetrics
//	               and IsActive must fail with UNAVAILABLE or DEADLINE_EXCEEDED. Their latencies are
//	               reported as dead_* kinds; the healthy polls are measured as usual.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

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
	share := flag.Int("share", 1, "ScaledJobs per consumer group")
	streams := flag.Int("streams", 0, "StreamIsActive streams held open during the window")
	dead := flag.Int("dead", 0, "extra ScaledJobs on a dead cluster")
	deadMode := flag.String("dead-mode", "refused", "how the dead cluster is dead: refused or blackhole")
	variantNote := flag.String("variant-note", "", "appended to the variant label in parentheses (e.g. the scaler flags this run used)")
	side := flag.String("side", "klag", "the side's name in the JSON line (klag, or floor-callback / floor-async for bench's klag_rpc_floor)")
	metricsURL := flag.String("metrics-url", "", "klag-scaler's /metrics URL: the age of the offsets behind its answers is read from it at the end")
	flag.Parse()
	if *addr == "" || *bootstrap == "" || *pid == 0 {
		fmt.Fprintln(os.Stderr, "fanout: --addr, --bootstrap and --pid are required")
		os.Exit(2)
	}
	groups := (*s + max(*share, 1) - 1) / max(*share, 1)
	l := layout.Layout{Prefix: *prefix, Topics: min(*topics, groups), Partitions: *partitions,
		Records: *records, Share: *share}
	variant := "distinct groups"
	switch {
	case *share > 1:
		variant = fmt.Sprintf("%d ScaledJobs per group", *share)
	case *streams > 0:
		variant = fmt.Sprintf("+ %d open StreamIsActive streams", *streams)
	case *dead > 0:
		variant = fmt.Sprintf("+ %d ScaledJobs on a %s cluster", *dead, *deadMode)
	}
	if *variantNote != "" {
		variant += " (" + *variantNote + ")"
	}
	deadAddr := ""
	if *dead > 0 {
		var err error
		if deadAddr, err = deadCluster(*deadMode); err != nil {
			fmt.Fprintf(os.Stderr, "fanout: %v\n", err)
			os.Exit(1)
		}
	}

	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "fanout: %v\n", err)
		os.Exit(1)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)

	refs := make([]*pb.ScaledObjectRef, *s+*dead)
	for i := range refs {
		if i < *s {
			refs[i] = &pb.ScaledObjectRef{Name: fmt.Sprintf("sj-%d", i), Namespace: "bench",
				ScalerMetadata: l.TriggerMetadata(i, *bootstrap, *addr)}
		} else {
			refs[i] = &pb.ScaledObjectRef{Name: fmt.Sprintf("sj-%d", i), Namespace: "bench-dead",
				ScalerMetadata: l.TriggerMetadata(i-*s, deadAddr, *addr)}
		}
	}

	// Streams first: they must be open (first answer received) before the window starts.
	streamCtx, stopStreams := context.WithCancel(context.Background())
	st := openStreams(streamCtx, client, l, groups, *streams, *bootstrap, *addr)

	var mismatches atomic.Int64
	var deadCodes sync.Map // code name -> *atomic.Int64
	countCode := func(c codes.Code) {
		v, _ := deadCodes.LoadOrStore(c.String(), new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	// A dead cluster's poll: GetMetricSpec must answer, GetMetrics and IsActive must fail with
	// UNAVAILABLE or DEADLINE_EXCEEDED (anything else fails the poll).
	deadPoll := func(ctx context.Context, i int, rec *pollloop.Recorder) error {
		ref := refs[i]
		pollStart := time.Now()
		defer func() { rec.Add("dead_poll", time.Since(pollStart)) }()
		t := time.Now()
		spec, err := client.GetMetricSpec(ctx, ref)
		rec.Add("dead_GetMetricSpec", time.Since(t))
		if err != nil {
			return fmt.Errorf("dead cluster: GetMetricSpec: %w", err)
		}
		for _, ms := range spec.MetricSpecs {
			t = time.Now()
			_, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: ms.MetricName})
			rec.Add("dead_GetMetrics", time.Since(t))
			if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
				return fmt.Errorf("dead cluster: GetMetrics answered %v, want UNAVAILABLE or DEADLINE_EXCEEDED", c)
			} else {
				countCode(c)
			}
			t = time.Now()
			_, err = client.IsActive(ctx, ref)
			rec.Add("dead_IsActive", time.Since(t))
			if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
				return fmt.Errorf("dead cluster: IsActive answered %v, want UNAVAILABLE or DEADLINE_EXCEEDED", c)
			} else {
				countCode(c)
			}
		}
		return nil
	}
	poll := func(ctx context.Context, g int, rec *pollloop.Recorder) error {
		ctx, cancel := context.WithTimeout(ctx, *rpcTimeout)
		defer cancel()
		if g >= *s {
			return deadPoll(ctx, g, rec)
		}
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
			if want := l.Lag(l.GroupOf(g)); int64(value) != want || !active.Result {
				mismatches.Add(1)
				return fmt.Errorf("group %s: metric %v active %v, want %d true", l.Group(l.GroupOf(g)),
					value, active.Result, want)
			}
		}
		return nil
	}
	var stats []string
	if *proxyStats != "" {
		stats = strings.Split(*proxyStats, ",")
	}
	res, err := pollloop.Run(context.Background(), pollloop.Config{S: *s + *dead, Interval: *interval,
		Warmup: *warmup, Cycles: *cycles, PID: *pid, ProxyStats: stats, Seed: 1}, poll)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fanout: %v\n", err)
		os.Exit(1)
	}
	// The pollers' count includes the dead cluster's; the row is about the healthy S.
	res.S = *s
	if *dead > 0 {
		res.Cycles = float64(res.Latency["poll"].Count) / float64(*s)
		if res.Cycles > 0 {
			res.CPUPerCycle = res.CPUSeconds / res.Cycles
			res.KafkaPerCycle = 0
			for api, n := range res.KafkaRequests {
				res.KafkaByAPICycle[api] = n / res.Cycles
				res.KafkaPerCycle += n / res.Cycles
			}
		}
	}
	stopStreams()
	streamStats := st.finish()
	var ages map[string]dataAge
	var evaluations map[string]float64
	if *metricsURL != "" {
		// The figures stand without it: a scaler without the histogram only loses this column.
		if ages, evaluations, err = scrapeDataAge(*metricsURL); err != nil {
			fmt.Fprintf(os.Stderr, "fanout: warning: %v\n", err)
		}
	}
	codeCounts := map[string]int64{}
	deadCodes.Range(func(k, v any) bool { codeCounts[k.(string)] = v.(*atomic.Int64).Load(); return true })
	out := struct {
		Side string `json:"side"`
		*pollloop.Result
		Variant         string             `json:"variant"`
		Share           int                `json:"share"`
		Groups          int                `json:"groups"`
		P               int                `json:"P"`
		Topics          int                `json:"topics"`
		ValueMismatches int64              `json:"value_mismatches"`
		Streams         *streamResult      `json:"streams,omitempty"`
		Dead            int                `json:"dead,omitempty"`
		DeadMode        string             `json:"dead_mode,omitempty"`
		DeadCodes       map[string]int64   `json:"dead_codes,omitempty"`
		DataAge         map[string]dataAge `json:"data_age,omitempty"`
		// klag_scaler_evaluations_total by outcome (fresh, reused, reused_under_load, joined),
		// whole run.
		Evaluations map[string]float64 `json:"evaluations,omitempty"`
	}{Side: *side, Result: res, Variant: variant, Share: max(*share, 1), Groups: groups,
		P: *partitions, Topics: l.Topics, ValueMismatches: mismatches.Load(), Streams: streamStats,
		Dead: *dead, DeadCodes: codeCounts, DataAge: ages, Evaluations: evaluations}
	if *dead > 0 {
		out.DeadMode = *deadMode
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

// deadCluster returns the address of a Kafka "cluster" that never works: "refused" is a port
// that was just bound and closed (connections are refused at once), "blackhole" a listener that
// accepts connections and never answers (requests wait until their timeout).
func deadCluster(mode string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	switch mode {
	case "refused":
		ln.Close()
	case "blackhole":
		go func() {
			var held []net.Conn // kept open, never read
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				held = append(held, c)
			}
		}()
	default:
		ln.Close()
		return "", fmt.Errorf("--dead-mode %q: want refused or blackhole", mode)
	}
	return addr, nil
}

// streamResult: what happened to the StreamIsActive streams held open during the run.
type streamResult struct {
	Opened       int              `json:"opened"`
	FirstAnswers int              `json:"first_answers"`
	FirstTrue    int              `json:"first_true"`
	Failed       int              `json:"failed"` // ended with an error before the run was over
	FirstError   string           `json:"first_error,omitempty"`
	OpenAll      float64          `json:"open_all_s"` // until every stream had its first answer
	FirstAnswer  pollloop.Latency `json:"first_answer"`
}

type streamSet struct {
	n       int
	mu      sync.Mutex
	res     streamResult
	wg      sync.WaitGroup
	lat     []time.Duration
	started time.Time
}

// openStreams opens n StreamIsActive streams (namespace bench-streams, trigger i on the
// metadata of group i % groups) and waits up to a minute for every first answer.
func openStreams(ctx context.Context, client pb.ExternalScalerClient, l layout.Layout, groups, n int,
	bootstrap, addr string) *streamSet {
	s := &streamSet{n: n, started: time.Now()}
	if n == 0 {
		return s
	}
	var first sync.WaitGroup
	first.Add(n)
	for i := 0; i < n; i++ {
		ref := &pb.ScaledObjectRef{Name: fmt.Sprintf("so-%d", i), Namespace: "bench-streams",
			ScalerMetadata: layout.Layout{Prefix: l.Prefix, Topics: l.Topics, Partitions: l.Partitions,
				Records: l.Records}.TriggerMetadata(i%groups, bootstrap, addr)}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.Now()
			stream, err := client.StreamIsActive(ctx, ref)
			gotFirst := false
			defer func() {
				if !gotFirst {
					first.Done()
				}
			}()
			fail := func(err error) {
				if ctx.Err() != nil {
					return // ended by us
				}
				s.mu.Lock()
				s.res.Failed++
				if s.res.FirstError == "" {
					s.res.FirstError = err.Error()
				}
				s.mu.Unlock()
			}
			if err != nil {
				fail(err)
				return
			}
			s.mu.Lock()
			s.res.Opened++
			s.mu.Unlock()
			for {
				r, err := stream.Recv()
				if err != nil {
					fail(err)
					return
				}
				if !gotFirst {
					gotFirst = true
					s.mu.Lock()
					s.res.FirstAnswers++
					if r.Result {
						s.res.FirstTrue++
					}
					s.lat = append(s.lat, time.Since(t))
					s.mu.Unlock()
					first.Done()
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { first.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
	s.mu.Lock()
	s.res.OpenAll = time.Since(s.started).Seconds()
	s.mu.Unlock()
	return s
}

// finish waits for the streams to end (their context is cancelled) and summarizes them.
func (s *streamSet) finish() *streamResult {
	if s.n == 0 {
		return nil
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res.FirstAnswer = pollloop.Summarize(s.lat)
	return &s.res
}

// dataAge: how old the offsets behind klag-scaler's evaluations were when it computed them, from
// its histogram klag_evaluation_data_age_seconds{offsets="end"|"committed"} (whole run).
type dataAge struct {
	Count  float64 `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	// Upper bounds of the histogram buckets holding the median and the 99th percentile (-1:
	// above the largest finite bucket).
	P50UpperMS float64 `json:"p50_le_ms"`
	P99UpperMS float64 `json:"p99_le_ms"`
}

// scrapeDataAge also returns klag_scaler_evaluations_total by outcome.
func scrapeDataAge(url string) (map[string]dataAge, map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: %w", err)
	}
	type hist struct {
		sum, count float64
		buckets    [][2]float64 // (le, cumulative count)
	}
	hs := map[string]*hist{}
	get := func(kind string) *hist {
		if hs[kind] == nil {
			hs[kind] = &hist{}
		}
		return hs[kind]
	}
	evaluations := map[string]float64{}
	const evalName = "klag_scaler_evaluations_total{"
	const name = "klag_evaluation_data_age_seconds"
	// One pass over the exposition: each sample line is "series value".
	for _, line := range strings.Split(string(body), "\n") {
		isEval, isAge := strings.HasPrefix(line, evalName), strings.HasPrefix(line, name)
		sp := strings.LastIndexByte(line, ' ')
		if (!isEval && !isAge) || sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		series := line[:sp]
		if isEval {
			evaluations[label(series, "outcome")] = v
			continue
		}
		kind := label(series, "offsets")
		switch {
		case strings.HasPrefix(series, name+"_sum"):
			get(kind).sum = v
		case strings.HasPrefix(series, name+"_count"):
			get(kind).count = v
		case strings.HasPrefix(series, name+"_bucket"):
			le := label(series, "le")
			bound := math.Inf(1)
			if le != "+Inf" {
				if bound, err = strconv.ParseFloat(le, 64); err != nil {
					continue
				}
			}
			get(kind).buckets = append(get(kind).buckets, [2]float64{bound, v})
		}
	}
	out := map[string]dataAge{}
	for kind, h := range hs {
		if h.count == 0 {
			continue
		}
		sort.Slice(h.buckets, func(i, j int) bool { return h.buckets[i][0] < h.buckets[j][0] })
		// -1: above the largest finite bucket (JSON has no infinity).
		upper := func(q float64) float64 {
			for _, b := range h.buckets {
				if b[1] >= q*h.count {
					if math.IsInf(b[0], 1) {
						return -1
					}
					return b[0] * 1000
				}
			}
			return -1
		}
		out[kind] = dataAge{Count: h.count, MeanMS: h.sum / h.count * 1000,
			P50UpperMS: upper(0.5), P99UpperMS: upper(0.99)}
	}
	if len(out) == 0 {
		return nil, evaluations, fmt.Errorf("metrics: no %s series at %s", name, url)
	}
	return out, evaluations, nil
}

// label returns the value of label `key` in a Prometheus series text (name{a="x",b="y"}).
func label(series, key string) string {
	i := strings.Index(series, key+"=\"")
	if i < 0 {
		return ""
	}
	rest := series[i+len(key)+2:]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return ""
}
