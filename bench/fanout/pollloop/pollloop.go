// Package pollloop drives S pollers the way KEDA's operator drives S ScaledJobs: one goroutine
// per ScaledJob, each polling every interval at its own phase, and measures one window of
// polls: latency per call kind, Kafka requests (from kproxy counters), the CPU time and peak RSS
// of the process under test (/proc/PID). It is shared by bench/fanout (klag-scaler over gRPC)
// and bench/keda-ref (KEDA's own kafka scaler code), so both sides are measured the same way.
//
//	res, err := pollloop.Run(ctx, pollloop.Config{S: 100, Interval: time.Second, Warmup: 1,
//		Cycles: 5, PID: scalerPID, ProxyStats: urls}, func(ctx context.Context, i int, rec *pollloop.Recorder) error {
//		start := time.Now(); ...; rec.Add("GetMetrics", time.Since(start)); return nil
//	})
package pollloop

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config of one measured run.
type Config struct {
	S        int           // pollers (ScaledJobs / triggers)
	Interval time.Duration // polling interval (KEDA's pollingInterval, compressed)
	Warmup   int           // cycles run before the window (clients created, caches warm)
	Cycles   int           // cycles in the measured window
	PID      int           // process whose CPU and peak RSS are reported (0: this process)
	// kproxy stats URLs (http://host:port/stats); their counters are summed. Empty: no Kafka
	// request counts.
	ProxyStats []string
	Seed       int64 // phases are uniform random in [0, Interval) from this seed
}

// Recorder collects the latencies of one poll; kinds are free-form ("GetMetrics", "poll").
type Recorder struct {
	kinds []string
	durs  []time.Duration
}

// Add records one call of `kind` that took `d`.
func (r *Recorder) Add(kind string, d time.Duration) {
	r.kinds = append(r.kinds, kind)
	r.durs = append(r.durs, d)
}

// Poller makes the calls of poll number `i` (0 <= i < S). An error counts as a failed poll; its
// latencies are still recorded.
type Poller func(ctx context.Context, i int, rec *Recorder) error

// Latency summary of one call kind, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// Result of the measured window.
type Result struct {
	S               int                `json:"S"`
	IntervalS       float64            `json:"interval_s"`
	Polls           int                `json:"polls"`        // polls started in the window
	Cycles          float64            `json:"cycles"`       // polls / S
	LatePolls       int                `json:"late_polls"`   // started after their scheduled time + 10% of the interval
	FailedPolls     int                `json:"failed_polls"` // in the window
	FirstError      string             `json:"first_error,omitempty"`
	WindowS         float64            `json:"window_s"`
	Latency         map[string]Latency `json:"latency"`
	CPUSeconds      float64            `json:"cpu_s"`           // user+system of PID over the window
	CPUPerCycle     float64            `json:"cpu_s_per_cycle"` // CPUSeconds / Cycles
	PeakRSSMB       float64            `json:"peak_rss_mb"`     // VmHWM of PID at the end
	RSSMB           float64            `json:"rss_mb"`          // VmRSS of PID at the end
	Threads         int                `json:"threads"`
	KafkaRequests   map[string]float64 `json:"kafka_requests"` // per API over the window
	KafkaPerCycle   float64            `json:"kafka_requests_per_cycle"`
	KafkaByAPICycle map[string]float64 `json:"kafka_requests_per_cycle_by_api"`
	Connections     float64            `json:"kafka_connections_opened"` // over the whole run, warm-up included
}

// Run starts S poll loops, measures cycles [Warmup, Warmup+Cycles) and returns when every loop
// has finished its last poll of the window.
func Run(ctx context.Context, cfg Config, poll Poller) (*Result, error) {
	if cfg.S <= 0 || cfg.Interval <= 0 || cfg.Cycles <= 0 {
		return nil, fmt.Errorf("pollloop: S, Interval and Cycles must be positive")
	}
	pid := cfg.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	rng := rand.New(rand.NewSource(cfg.Seed))
	phases := make([]time.Duration, cfg.S)
	for i := range phases {
		phases[i] = time.Duration(rng.Int63n(int64(cfg.Interval)))
	}
	start := time.Now().Add(50 * time.Millisecond)
	windowStart := start.Add(time.Duration(cfg.Warmup) * cfg.Interval)
	windowEnd := windowStart.Add(time.Duration(cfg.Cycles) * cfg.Interval)

	type agg struct {
		mu     sync.Mutex
		lat    map[string][]time.Duration
		polls  int
		late   int
		failed int
		first  string
	}
	a := &agg{lat: map[string][]time.Duration{}}

	// Snapshot the counters when the window opens (a goroutine sleeps until then).
	var before snapshot
	var beforeErr error
	snapDone := make(chan struct{})
	go func() {
		defer close(snapDone)
		sleepUntil(ctx, windowStart)
		before, beforeErr = takeSnapshot(pid, cfg.ProxyStats)
	}()

	var wg sync.WaitGroup
	for i := 0; i < cfg.S; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			next := start.Add(phases[i])
			for {
				if !sleepUntil(ctx, next) {
					return
				}
				began := time.Now()
				if !began.Before(windowEnd) {
					return
				}
				var rec Recorder
				err := poll(ctx, i, &rec)
				if !began.Before(windowStart) {
					a.mu.Lock()
					a.polls++
					if began.Sub(next) > cfg.Interval/10 {
						a.late++
					}
					if err != nil {
						a.failed++
						if a.first == "" {
							a.first = err.Error()
						}
					}
					for k, kind := range rec.kinds {
						a.lat[kind] = append(a.lat[kind], rec.durs[k])
					}
					a.mu.Unlock()
				}
				// KEDA's scale loop: the next poll is one interval after this one was due, or
				// at once when this one overran.
				next = next.Add(cfg.Interval)
				if now := time.Now(); now.After(next) {
					next = now
				}
			}
		}(i)
	}
	wg.Wait()
	<-snapDone
	if beforeErr != nil {
		return nil, beforeErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	after, err := takeSnapshot(pid, cfg.ProxyStats)
	if err != nil {
		return nil, err
	}

	res := &Result{
		S:           cfg.S,
		IntervalS:   cfg.Interval.Seconds(),
		Polls:       a.polls,
		Cycles:      float64(a.polls) / float64(cfg.S),
		LatePolls:   a.late,
		FailedPolls: a.failed,
		FirstError:  a.first,
		WindowS:     after.at.Sub(before.at).Seconds(),
		Latency:     map[string]Latency{},
		CPUSeconds:  after.cpu - before.cpu,
		PeakRSSMB:   after.hwmKB / 1024,
		RSSMB:       after.rssKB / 1024,
		Threads:     after.threads,
	}
	for kind, d := range a.lat {
		res.Latency[kind] = Summarize(d)
	}
	if res.Cycles > 0 {
		res.CPUPerCycle = res.CPUSeconds / res.Cycles
	}
	if len(cfg.ProxyStats) > 0 {
		res.KafkaRequests = map[string]float64{}
		res.KafkaByAPICycle = map[string]float64{}
		for api, n := range after.kafka {
			if api == "connections" {
				res.Connections = n
				continue
			}
			if d := n - before.kafka[api]; d > 0 {
				res.KafkaRequests[api] = d
				if res.Cycles > 0 {
					res.KafkaByAPICycle[api] = d / res.Cycles
					res.KafkaPerCycle += d / res.Cycles
				}
			}
		}
	}
	return res, nil
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Summarize returns the count and nearest-rank percentiles of d (sorted in place).
func Summarize(d []time.Duration) Latency {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	q := func(p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		// Nearest rank.
		k := int(p*float64(len(d))+0.999999) - 1
		if k < 0 {
			k = 0
		}
		if k >= len(d) {
			k = len(d) - 1
		}
		return ms(d[k])
	}
	l := Latency{Count: len(d), P50: q(0.50), P90: q(0.90), P99: q(0.99)}
	if len(d) > 0 {
		l.Max = ms(d[len(d)-1])
	}
	return l
}

type snapshot struct {
	at      time.Time
	cpu     float64 // seconds
	hwmKB   float64
	rssKB   float64
	threads int
	kafka   map[string]float64
}

func takeSnapshot(pid int, proxies []string) (snapshot, error) {
	s := snapshot{at: time.Now()}
	var err error
	if s.cpu, err = ProcCPUSeconds(pid); err != nil {
		return s, err
	}
	st, err := ProcStatus(pid)
	if err != nil {
		return s, err
	}
	s.hwmKB, s.rssKB, s.threads = float64(st["VmHWM"]), float64(st["VmRSS"]), int(st["Threads"])
	if len(proxies) > 0 {
		s.kafka, err = ProxyCounters(proxies)
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// ProcCPUSeconds is utime+stime of `pid` (this process and its finished, waited-for children
// are not included) from /proc/PID/stat.
func ProcCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may contain spaces.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("pollloop: short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTicks, nil
}

// USER_HZ: 100 on every Linux ABI Go supports.
const clockTicks = 100

// ProcStatus returns the numeric fields of /proc/PID/status (kB values in kB).
func ProcStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// ProxyCounters sums the counters of kproxy instances (GET <url> -> {"counts": {...}}).
func ProxyCounters(urls []string) (map[string]float64, error) {
	sum := map[string]float64{}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, u := range urls {
		resp, err := client.Get(u)
		if err != nil {
			return nil, fmt.Errorf("pollloop: kproxy stats %s: %w", u, err)
		}
		var body struct {
			Counts map[string]float64 `json:"counts"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("pollloop: kproxy stats %s: %w", u, err)
		}
		for k, v := range body.Counts {
			sum[k] += v
		}
	}
	return sum, nil
}
