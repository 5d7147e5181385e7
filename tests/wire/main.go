// Command wire is klag's wire test: it talks to a running klag-scaler through KEDA's own
// generated Go client (github.com/kedacore/keda/v2/pkg/scalers/externalscaler), not through
// code generated from klag's copy of the proto, and makes the calls KEDA makes for one poll of
// a ScaledJob with a `type: external` trigger:
//
//	GetMetricSpec(ref) -> GetMetrics({ref, metricName}) -> IsActive(ref)
//
// It checks the answers against the --expect-* flags, then checks two error paths: metadata
// with an invalid lagThreshold must give INVALID_ARGUMENT naming the key, and an unknown topic
// must give NOT_FOUND. It prints one line per call and a final PASS or FAIL line; the exit
// status is 0 only on PASS (2 for bad usage).
//
//	wire --addr 127.0.0.1:6000 --wait 30s \
//	  --meta bootstrapServers=127.0.0.1:9092 --meta consumerGroup=g --meta topic=t \
//	  --meta lagThreshold=10 --expect-metric-name kafka-t --expect-target 10 \
//	  --expect-value 15 --expect-active true
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// metaFlags collects repeated --meta key=value flags, in order; a later key wins.
type metaFlags struct {
	keys   []string
	values map[string]string
}

func (m *metaFlags) String() string {
	if m == nil {
		return ""
	}
	parts := make([]string, 0, len(m.keys))
	for _, k := range m.keys {
		parts = append(parts, k+"="+m.values[k])
	}
	return strings.Join(parts, " ")
}

func (m *metaFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	if m.values == nil {
		m.values = map[string]string{}
	}
	if _, seen := m.values[k]; !seen {
		m.keys = append(m.keys, k)
	}
	m.values[k] = v
	return nil
}

// optionalFloat is a flag that remembers whether it was given.
type optionalFloat struct {
	set bool
	v   float64
}

func (o *optionalFloat) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.FormatFloat(o.v, 'g', -1, 64)
}

func (o *optionalFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %q", s)
	}
	o.set, o.v = true, v
	return nil
}

type optionalBool struct {
	set bool
	v   bool
}

func (o *optionalBool) String() string {
	if o == nil || !o.set {
		return ""
	}
	return strconv.FormatBool(o.v)
}

func (o *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("not true/false: %q", s)
	}
	o.set, o.v = true, v
	return nil
}

type options struct {
	addr             string
	name             string
	namespace        string
	meta             metaFlags
	timeout          time.Duration
	wait             time.Duration
	expectName       string
	expectTarget     optionalFloat
	expectValue      optionalFloat
	expectActive     optionalBool
	checkErrors      bool
	invalidMeta      string
	unknownTopic     string
	requireIntFields bool
}

// checker collects mismatches instead of stopping at the first one.
type checker struct{ failures []string }

func (c *checker) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.failures = append(c.failures, msg)
	fmt.Printf("  MISMATCH: %s\n", msg)
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	fs := flag.NewFlagSet("wire", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "", "klag-scaler address host:port (required)")
	fs.StringVar(&o.name, "name", "wire-test", "ScaledObjectRef.name")
	fs.StringVar(&o.namespace, "namespace", "default", "ScaledObjectRef.namespace")
	fs.Var(&o.meta, "meta", "trigger metadata key=value (repeat)")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Second, "deadline of each RPC")
	fs.DurationVar(&o.wait, "wait", 0,
		"first wait up to this long for the gRPC health service to answer SERVING")
	fs.StringVar(&o.expectName, "expect-metric-name", "", "expected metric name")
	fs.Var(&o.expectTarget, "expect-target", "expected target (lagThreshold)")
	fs.Var(&o.expectValue, "expect-value", "expected metric value")
	fs.Var(&o.expectActive, "expect-active", "expected IsActive result (true/false)")
	fs.BoolVar(&o.checkErrors, "check-errors", true,
		"also check INVALID_ARGUMENT for --invalid-meta and NOT_FOUND for --unknown-topic")
	fs.StringVar(&o.invalidMeta, "invalid-meta", "lagThreshold=-3",
		"key=value that makes the metadata invalid; the error must name the key")
	fs.StringVar(&o.unknownTopic, "unknown-topic", "",
		"a topic that does not exist (default: <topic>-klag-wire-missing-<pid>)")
	fs.BoolVar(&o.requireIntFields, "require-int-fields", true,
		"require the int64 targetSize/metricValue fields to be set consistently with the float "+
			"ones (KEDA releases before the float fields read only the int64 ones)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "wire: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if o.addr == "" {
		fmt.Fprintln(os.Stderr, "wire: --addr is required")
		return 2
	}
	if o.checkErrors {
		if _, _, ok := strings.Cut(o.invalidMeta, "="); !ok {
			fmt.Fprintf(os.Stderr, "wire: --invalid-meta wants key=value, got %q\n", o.invalidMeta)
			return 2
		}
		if o.unknownTopic == "" {
			o.unknownTopic = fmt.Sprintf("%s-klag-wire-missing-%d", o.meta.values["topic"], os.Getpid())
		}
	}

	// The same dial KEDA does for an external scaler without TLS (grpc.NewClient, insecure).
	conn, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Printf("FAIL: cannot create a gRPC client for %s: %v\n", o.addr, err)
		return 1
	}
	defer conn.Close()

	if o.wait > 0 {
		if err := waitServing(conn, o.wait); err != nil {
			fmt.Printf("FAIL: %v\n", err)
			return 1
		}
	}

	c := &checker{}
	client := pb.NewExternalScalerClient(conn)
	poll(client, &o, c)
	if o.checkErrors {
		checkInvalidArgument(client, &o, c)
		checkNotFound(client, &o, c)
	}

	if len(c.failures) > 0 {
		fmt.Printf("FAIL: wire test against %s: %d mismatches: %s\n", o.addr, len(c.failures),
			strings.Join(c.failures, "; "))
		return 1
	}
	fmt.Printf("PASS: wire test against %s (KEDA externalscaler client)\n", o.addr)
	return 0
}

func waitServing(conn *grpc.ClientConn, wait time.Duration) error {
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(wait)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: ""})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			fmt.Println("health: SERVING")
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = resp.GetStatus().String()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the scaler's health service did not answer SERVING within %v (last: %s)",
				wait, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ref(o *options, meta map[string]string) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Name: o.name, Namespace: o.namespace, ScalerMetadata: meta}
}

func copyMeta(o *options) map[string]string {
	m := make(map[string]string, len(o.meta.values))
	for k, v := range o.meta.values {
		m[k] = v
	}
	return m
}

// kedaValue is the number KEDA takes from a (int64, double) pair: the double when it is > 0,
// else the int64 (kedacore/keda v2.20 pkg/scalers/external_scaler.go).
func kedaValue(i int64, f float64) float64 {
	if f > 0 {
		return f
	}
	return float64(i)
}

// checkPair checks one (int64, double) pair against an expectation, the way KEDA reads it.
func checkPair(c *checker, o *options, what string, i int64, f float64, want optionalFloat) {
	got := kedaValue(i, f)
	if want.set && math.Abs(got-want.v) > 1e-9 {
		c.failf("%s: got %v (int64 %d, double %v), want %v", what, got, i, f, want.v)
	}
	if o.requireIntFields && f > 0 && math.Abs(float64(i)-math.Round(f)) > 0.5+1e-9 {
		c.failf("%s: int64 field %d disagrees with double field %v (KEDA before the double "+
			"fields reads the int64 one)", what, i, f)
	}
}

func poll(client pb.ExternalScalerClient, o *options, c *checker) {
	meta := copyMeta(o)
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("poll: ref %s/%s, metadata:", o.namespace, o.name)
	for _, k := range keys {
		fmt.Printf(" %s=%s", k, meta[k])
	}
	fmt.Println()

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	spec, err := client.GetMetricSpec(ctx, ref(o, meta))
	cancel()
	if err != nil {
		c.failf("GetMetricSpec: %v", err)
		return
	}
	fmt.Printf("GetMetricSpec: %v\n", spec.GetMetricSpecs())
	if n := len(spec.GetMetricSpecs()); n != 1 {
		c.failf("GetMetricSpec: %d metric specs, want 1", n)
		if n == 0 {
			return
		}
	}
	ms := spec.GetMetricSpecs()[0]
	if o.expectName != "" && ms.GetMetricName() != o.expectName {
		c.failf("GetMetricSpec: metric name %q, want %q", ms.GetMetricName(), o.expectName)
	}
	checkPair(c, o, "GetMetricSpec target", ms.GetTargetSize(), ms.GetTargetSizeFloat(), o.expectTarget)

	// KEDA strips its "sN-" prefix and sends the name the scaler gave.
	ctx, cancel = context.WithTimeout(context.Background(), o.timeout)
	metrics, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{
		ScaledObjectRef: ref(o, meta), MetricName: ms.GetMetricName()})
	cancel()
	if err != nil {
		c.failf("GetMetrics: %v", err)
	} else {
		fmt.Printf("GetMetrics: %v\n", metrics.GetMetricValues())
		if n := len(metrics.GetMetricValues()); n != 1 {
			c.failf("GetMetrics: %d metric values, want 1", n)
		}
		if len(metrics.GetMetricValues()) > 0 {
			mv := metrics.GetMetricValues()[0]
			if mv.GetMetricName() != ms.GetMetricName() {
				c.failf("GetMetrics: metric name %q, want the spec's %q", mv.GetMetricName(),
					ms.GetMetricName())
			}
			checkPair(c, o, "GetMetrics value", mv.GetMetricValue(), mv.GetMetricValueFloat(),
				o.expectValue)
		}
	}

	ctx, cancel = context.WithTimeout(context.Background(), o.timeout)
	active, err := client.IsActive(ctx, ref(o, meta))
	cancel()
	if err != nil {
		c.failf("IsActive: %v", err)
		return
	}
	fmt.Printf("IsActive: %v\n", active.GetResult())
	if o.expectActive.set && active.GetResult() != o.expectActive.v {
		c.failf("IsActive: %v, want %v", active.GetResult(), o.expectActive.v)
	}
}

// expectCode checks that err carries the wanted gRPC code and, when mustMention is not empty,
// that its message mentions it.
func expectCode(c *checker, what string, err error, want codes.Code, mustMention string) {
	if err == nil {
		c.failf("%s: succeeded, want %s", what, want)
		return
	}
	st, _ := status.FromError(err)
	fmt.Printf("%s: %s: %s\n", what, st.Code(), st.Message())
	if st.Code() != want {
		c.failf("%s: code %s (%q), want %s", what, st.Code(), st.Message(), want)
		return
	}
	if mustMention != "" && !strings.Contains(st.Message(), mustMention) {
		c.failf("%s: message %q does not name %q", what, st.Message(), mustMention)
	}
}

func checkInvalidArgument(client pb.ExternalScalerClient, o *options, c *checker) {
	key, value, _ := strings.Cut(o.invalidMeta, "=")
	meta := copyMeta(o)
	meta[key] = value
	fmt.Printf("invalid metadata: %s=%s\n", key, value)

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	_, err := client.GetMetricSpec(ctx, ref(o, meta))
	cancel()
	expectCode(c, "GetMetricSpec(invalid)", err, codes.InvalidArgument, key)

	ctx, cancel = context.WithTimeout(context.Background(), o.timeout)
	_, err = client.GetMetrics(ctx, &pb.GetMetricsRequest{
		ScaledObjectRef: ref(o, meta), MetricName: o.expectName})
	cancel()
	expectCode(c, "GetMetrics(invalid)", err, codes.InvalidArgument, key)

	ctx, cancel = context.WithTimeout(context.Background(), o.timeout)
	_, err = client.IsActive(ctx, ref(o, meta))
	cancel()
	expectCode(c, "IsActive(invalid)", err, codes.InvalidArgument, key)
}

// kafkaMetricName is the metric name KEDA's kafka scaler gives a topic: "kafka-" + topic with
// '/', '.', ':', '%', '(' and ')' replaced by '-'.
func kafkaMetricName(topic string) string {
	return "kafka-" + strings.NewReplacer("/", "-", ".", "-", ":", "-", "%", "-", "(", "-", ")", "-").Replace(topic)
}

func checkNotFound(client pb.ExternalScalerClient, o *options, c *checker) {
	meta := copyMeta(o)
	meta["topic"] = o.unknownTopic
	fmt.Printf("unknown topic: %s\n", o.unknownTopic)

	// GetMetricSpec may answer from the metadata alone, so only the calls that must read the
	// topic's offsets are held to NOT_FOUND.
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	_, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{
		ScaledObjectRef: ref(o, meta), MetricName: kafkaMetricName(o.unknownTopic)})
	cancel()
	expectCode(c, "GetMetrics(unknown topic)", err, codes.NotFound, o.unknownTopic)

	ctx, cancel = context.WithTimeout(context.Background(), o.timeout)
	_, err = client.IsActive(ctx, ref(o, meta))
	cancel()
	expectCode(c, "IsActive(unknown topic)", err, codes.NotFound, o.unknownTopic)
}
