// Command kproxy is a counting TCP proxy in front of a Kafka broker: it forwards bytes both
// ways, reads each request's header to count requests per API (Metadata, OffsetFetch,
// ListOffsets, ...), and rewrites the broker address in Metadata, FindCoordinator and
// DescribeCluster responses to its own, so clients keep talking through it after bootstrap.
// bench/run.sh puts one (or several: one process holds at most ~RLIMIT_NOFILE/2 connections)
// in front of the benchmark broker, so klag-scaler and KEDA's scaler code are counted the same
// way, on the wire.
//
//	kproxy --upstream 127.0.0.1:9092 --addr-file /tmp/p1
//	# /tmp/p1: "127.0.0.1:PORT http://127.0.0.1:PORT2/stats"; GET the URL for
//	# {"counts": {"Metadata": 12, "OffsetFetch": 10, ..., "connections": 3}}
//
// Only plaintext listeners whose advertised host is the upstream host are supported (the proxy
// listens on that host, so the rewrite keeps the message length).
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
)

var apiNames = map[int16]string{
	0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit",
	9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup",
	14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups", 17: "SaslHandshake",
	18: "ApiVersions", 19: "CreateTopics", 22: "InitProducerId", 32: "DescribeConfigs",
	36: "SaslAuthenticate", 42: "DeleteGroups", 47: "OffsetDelete", 60: "DescribeCluster",
}

// Responses that carry broker addresses.
var rewritten = map[int16]bool{3: true, 10: true, 60: true}

type counters struct {
	mu     sync.Mutex
	byAPI  map[int16]int64
	conns  atomic.Int64
	active atomic.Int64
}

func (c *counters) add(api int16) {
	c.mu.Lock()
	c.byAPI[api]++
	c.mu.Unlock()
}

func (c *counters) snapshot() map[string]int64 {
	out := map[string]int64{}
	c.mu.Lock()
	for k, v := range c.byAPI {
		name, ok := apiNames[k]
		if !ok {
			name = "api" + strconv.Itoa(int(k))
		}
		out[name] += v
	}
	c.mu.Unlock()
	out["connections"] = c.conns.Load()
	return out
}

func main() {
	upstream := flag.String("upstream", "", "broker host:port (required)")
	listen := flag.String("listen", "", "proxy address (default: upstream host, free port)")
	statsListen := flag.String("stats-listen", "127.0.0.1:0", "HTTP address of /stats")
	addrFile := flag.String("addr-file", "", "write \"PROXY_ADDR STATS_URL\" here once listening")
	flag.Parse()
	if *upstream == "" {
		fmt.Fprintln(os.Stderr, "kproxy: --upstream is required")
		os.Exit(2)
	}
	upHost, upPortStr, err := net.SplitHostPort(*upstream)
	if err != nil {
		log.Fatalf("kproxy: --upstream: %v", err)
	}
	upPort, _ := strconv.Atoi(upPortStr)
	if *listen == "" {
		*listen = net.JoinHostPort(upHost, "0")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("kproxy: %v", err)
	}
	lnHost, lnPortStr, _ := net.SplitHostPort(ln.Addr().String())
	if lnHost != upHost {
		log.Fatalf("kproxy: must listen on the upstream host %s (got %s)", upHost, lnHost)
	}
	lnPort, _ := strconv.Atoi(lnPortStr)

	// "host" + int32 port as encoded in Kafka responses, before and after.
	from := append([]byte(upHost), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(from[len(upHost):], uint32(upPort))
	to := append([]byte(upHost), 0, 0, 0, 0)
	binary.BigEndian.PutUint32(to[len(upHost):], uint32(lnPort))

	c := &counters{byAPI: map[int16]int64{}}
	statsLn, err := net.Listen("tcp", *statsListen)
	if err != nil {
		log.Fatalf("kproxy: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"counts": c.snapshot(), "active": c.active.Load()})
	})
	go func() { log.Fatal(http.Serve(statsLn, mux)) }()

	line := fmt.Sprintf("%s http://%s/stats\n", ln.Addr(), statsLn.Addr())
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
			log.Fatalf("kproxy: %v", err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			log.Fatalf("kproxy: %v", err)
		}
	}
	fmt.Print(line)

	for {
		client, err := ln.Accept()
		if err != nil {
			log.Printf("kproxy: accept: %v", err)
			continue
		}
		c.conns.Add(1)
		go serve(client, *upstream, c, from, to)
	}
}

func serve(client net.Conn, upstream string, c *counters, from, to []byte) {
	c.active.Add(1)
	defer c.active.Add(-1)
	defer client.Close()
	server, err := net.Dial("tcp", upstream)
	if err != nil {
		log.Printf("kproxy: dial %s: %v", upstream, err)
		return
	}
	defer server.Close()

	var mu sync.Mutex
	pending := map[int32]int16{} // correlation id -> api key, for responses to rewrite
	done := make(chan struct{}, 2)

	// Requests: size, api key, api version, correlation id, ...
	go func() {
		defer func() { done <- struct{}{} }()
		var buf []byte
		for {
			frame, err := readFrame(client, &buf)
			if err != nil {
				return
			}
			if len(frame) >= 12 {
				api := int16(binary.BigEndian.Uint16(frame[4:6]))
				c.add(api)
				if rewritten[api] {
					mu.Lock()
					pending[int32(binary.BigEndian.Uint32(frame[8:12]))] = api
					mu.Unlock()
				}
			}
			if _, err := server.Write(frame); err != nil {
				return
			}
		}
	}()
	// Responses: size, correlation id, ...
	go func() {
		defer func() { done <- struct{}{} }()
		var buf []byte
		for {
			frame, err := readFrame(server, &buf)
			if err != nil {
				return
			}
			if len(frame) >= 8 {
				corr := int32(binary.BigEndian.Uint32(frame[4:8]))
				mu.Lock()
				_, rewrite := pending[corr]
				delete(pending, corr)
				mu.Unlock()
				if rewrite {
					replaceAll(frame[8:], from, to)
				}
			}
			if _, err := client.Write(frame); err != nil {
				return
			}
		}
	}()
	<-done // either side closed: close both
}

// readFrame reads one size-prefixed Kafka frame (size included) into *buf.
func readFrame(r io.Reader, buf *[]byte) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > 256<<20 {
		return nil, fmt.Errorf("kproxy: bad frame size %d", n)
	}
	if cap(*buf) < n+4 {
		*buf = make([]byte, n+4)
	}
	b := (*buf)[:n+4]
	copy(b, size[:])
	if _, err := io.ReadFull(r, b[4:]); err != nil {
		return nil, err
	}
	return b, nil
}

func replaceAll(b, from, to []byte) {
	for i := 0; i+len(from) <= len(b); i++ {
		if b[i] == from[0] && string(b[i:i+len(from)]) == string(from) {
			copy(b[i:], to)
			i += len(from) - 1
		}
	}
}
