// Command ksetup creates the fan-out benchmark's data set (see package layout) on a broker:
// topics of P partitions, Records records of ~200 bytes in each partition, and one committed
// offset per partition for each group (OffsetCommit with generation -1, as a group with no live
// member), so every group has lag. It uses sarama, the client KEDA's kafka scaler uses.
//
//	ksetup --bootstrap 127.0.0.1:9092 --topics 100 --groups 5000
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/klag/klag/bench/fanout/layout"
)

func main() {
	bootstrap := flag.String("bootstrap", "", "broker host:port (required)")
	prefix := flag.String("prefix", "fan-", "topic and group name prefix")
	topics := flag.Int("topics", 100, "topics (group g uses topic g % topics)")
	partitions := flag.Int("partitions", 12, "partitions per topic")
	records := flag.Int("records", 100, "records per partition")
	groups := flag.Int("groups", 5000, "consumer groups")
	flag.Parse()
	if *bootstrap == "" {
		fmt.Fprintln(os.Stderr, "ksetup: --bootstrap is required")
		os.Exit(2)
	}
	l := layout.Layout{Prefix: *prefix, Topics: *topics, Partitions: *partitions, Records: *records}
	if *groups < *topics {
		l.Topics = *groups
	}
	start := time.Now()

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	client, err := sarama.NewClient(strings.Split(*bootstrap, ","), cfg)
	if err != nil {
		log.Fatalf("ksetup: %v", err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		log.Fatalf("ksetup: %v", err)
	}

	existing, err := admin.ListTopics()
	if err != nil {
		log.Fatalf("ksetup: list topics: %v", err)
	}
	// All missing topics in one CreateTopics request (one per topic takes seconds each on a
	// loaded machine).
	var created []string
	details := map[string]*sarama.TopicDetail{}
	for t := 0; t < l.Topics; t++ {
		name := l.TopicName(t)
		if _, ok := existing[name]; ok {
			continue
		}
		details[name] = &sarama.TopicDetail{NumPartitions: int32(l.Partitions), ReplicationFactor: 1}
		created = append(created, name)
	}
	if len(details) > 0 {
		controller, err := client.Controller()
		if err != nil {
			log.Fatalf("ksetup: controller: %v", err)
		}
		resp, err := controller.CreateTopics(sarama.NewCreateTopicsRequest(cfg.Version, details, 60*time.Second, false))
		if err != nil {
			log.Fatalf("ksetup: create topics: %v", err)
		}
		for name, terr := range resp.TopicErrors {
			if terr != nil && terr.Err != sarama.ErrNoError && terr.Err != sarama.ErrTopicAlreadyExists {
				log.Fatalf("ksetup: create %s: %v", name, terr)
			}
		}
	}
	// Wait for leaders.
	deadline := time.Now().Add(60 * time.Second)
	for len(created) > 0 {
		_ = client.RefreshMetadata(created...)
		ready := true
		// Ready when every partition answers a ListOffsets (a leader in the metadata may not be
		// serving yet).
		for _, name := range created {
			ps, err := client.Partitions(name)
			ok := err == nil && len(ps) == l.Partitions
			for _, p := range ps {
				if !ok {
					break
				}
				if _, err := client.GetOffset(name, p, sarama.OffsetNewest); err != nil {
					ok = false
				}
			}
			ready = ready && ok
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("ksetup: topics have no leaders after 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Printf("ksetup: %d topics ready (%d created) after %.1f s", l.Topics, len(created), time.Since(start).Seconds())

	// Fill partitions up to `records` (a rerun on the same broker adds nothing).
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		log.Fatalf("ksetup: %v", err)
	}
	value := []byte(strings.Repeat("x", 180))
	produced := 0
	for t := 0; t < l.Topics; t++ {
		name := l.TopicName(t)
		var msgs []*sarama.ProducerMessage
		for p := 0; p < l.Partitions; p++ {
			end, err := client.GetOffset(name, int32(p), sarama.OffsetNewest)
			if err != nil {
				log.Fatalf("ksetup: offsets of %s/%d: %v", name, p, err)
			}
			for i := end; i < int64(l.Records); i++ {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: name, Partition: int32(p),
					Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)), Value: sarama.ByteEncoder(value)})
			}
		}
		if len(msgs) > 0 {
			if err := producer.SendMessages(msgs); err != nil {
				log.Fatalf("ksetup: produce to %s: %v", name, err)
			}
			produced += len(msgs)
		}
	}
	_ = producer.Close()
	log.Printf("ksetup: %d records produced after %.1f s", produced, time.Since(start).Seconds())

	// Commit every group's offsets, 16 at a time.
	var wg sync.WaitGroup
	work := make(chan int)
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range work {
				if err := commit(client, l, g); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for g := 0; g < *groups; g++ {
		work <- g
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		log.Fatalf("ksetup: %v", firstErr)
	}
	fmt.Printf("ksetup: %d topics (%d new) x %d partitions, %d records produced, %d groups committed in %.1f s\n",
		l.Topics, len(created), l.Partitions, produced, *groups, time.Since(start).Seconds())
}

func commit(client sarama.Client, l layout.Layout, g int) error {
	group := l.Group(g)
	coordinator, err := client.Coordinator(group)
	if err != nil {
		return fmt.Errorf("coordinator of %s: %w", group, err)
	}
	req := &sarama.OffsetCommitRequest{Version: 2, ConsumerGroup: group,
		ConsumerGroupGeneration: sarama.GroupGenerationUndefined,
		RetentionTime:           -1}
	for p := 0; p < l.Partitions; p++ {
		req.AddBlock(l.Topic(g), int32(p), l.Committed(g), 0, "")
	}
	resp, err := coordinator.CommitOffset(req)
	if err != nil {
		return fmt.Errorf("commit %s: %w", group, err)
	}
	for topic, ps := range resp.Errors {
		for p, kerr := range ps {
			if kerr != sarama.ErrNoError {
				return fmt.Errorf("commit %s %s/%d: %w", group, topic, p, kerr)
			}
		}
	}
	return nil
}
