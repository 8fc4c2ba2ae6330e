// franzgo-compat drives a broker with franz-go (github.com/twmb/franz-go/pkg/kgo), the Go
// reference client, for tests/compat/test_franz_go.py.
//
//	franzgo-compat produce       -brokers B -topic T -count N -partitions P
//	franzgo-compat consume       -brokers B -topic T -count N -partitions P
//	franzgo-compat group-consume -brokers B -topic T -count N -group G
//	franzgo-compat transact      -brokers B -topic T -partitions P -transactional-id ID  (transactions.go)
//
// produce sends N records synchronously (franz-go's defaults: idempotent, acks=all): record i goes
// to partition i%P with key "key-i", value "value-i" followed by the bytes 0x00 0xff, a header
// "index"="i" and a timestamp of 1700000000000+i ms. It prints one JSON line per acknowledged
// record. consume reads partitions 0..P-1 from the start by direct partition assignment
// (kgo.ConsumePartitions, no group); group-consume joins group G (kgo.ConsumerGroup) and commits.
// Both print one JSON line per record (bytes as base64) and exit once N records have arrived, or
// fail after the timeout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

type line struct {
	Partition   int32             `json:"partition"`
	Offset      int64             `json:"offset"`
	Key         []byte            `json:"key"`
	Value       []byte            `json:"value"`
	Headers     map[string][]byte `json:"headers"`
	TimestampMs int64             `json:"timestamp_ms"`
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: franzgo-compat produce|consume|group-consume [flags]")
	}
	mode := os.Args[1]
	flags := flag.NewFlagSet(mode, flag.ExitOnError)
	brokers := flags.String("brokers", "", "bootstrap servers, comma separated")
	topic := flags.String("topic", "", "topic")
	count := flags.Int("count", 0, "records to produce or to wait for")
	partitions := flags.Int("partitions", 1, "partitions of the topic")
	group := flags.String("group", "", "consumer group (group-consume)")
	transactionalID := flags.String("transactional-id", "", "transactional id (transact)")
	timeout := flags.Duration("timeout", 60*time.Second, "give up after this long")
	flags.Parse(os.Args[2:])

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(*brokers, ",")...), kgo.ClientID("franzgo-compat")}

	switch mode {
	case "produce":
		produce(ctx, opts, *topic, *count, *partitions)
	case "consume":
		offsets := map[int32]kgo.Offset{}
		for p := 0; p < *partitions; p++ {
			offsets[int32(p)] = kgo.NewOffset().AtStart()
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{*topic: offsets}))
		consume(ctx, opts, *count, false)
	case "group-consume":
		opts = append(opts, kgo.ConsumerGroup(*group), kgo.ConsumeTopics(*topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
		consume(ctx, opts, *count, true)
	case "transact":
		transact(ctx, opts, *topic, *partitions, *transactionalID)
	default:
		fail("unknown mode " + mode)
	}
}

func produce(ctx context.Context, opts []kgo.Opt, topic string, count, partitions int) {
	opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	client, err := kgo.NewClient(opts...)
	if err != nil {
		fail("new client: " + err.Error())
	}
	defer client.Close()
	records := make([]*kgo.Record, 0, count)
	for i := 0; i < count; i++ {
		records = append(records, &kgo.Record{
			Topic:     topic,
			Partition: int32(i % partitions),
			Key:       []byte(fmt.Sprintf("key-%d", i)),
			Value:     append([]byte(fmt.Sprintf("value-%d", i)), 0x00, 0xff),
			Headers:   []kgo.RecordHeader{{Key: "index", Value: []byte(strconv.Itoa(i))}},
			Timestamp: time.UnixMilli(1700000000000 + int64(i)),
		})
	}
	results := client.ProduceSync(ctx, records...)
	if err := results.FirstErr(); err != nil {
		fail("produce: " + err.Error())
	}
	encoder := json.NewEncoder(os.Stdout)
	for _, result := range results {
		encoder.Encode(toLine(result.Record))
	}
}

func consume(ctx context.Context, opts []kgo.Opt, count int, inGroup bool) {
	client, err := kgo.NewClient(opts...)
	if err != nil {
		fail("new client: " + err.Error())
	}
	defer client.Close()
	encoder := json.NewEncoder(os.Stdout)
	seen := 0
	for seen < count {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			fail(fmt.Sprintf("timed out after %d of %d records", seen, count))
		}
		for _, fetchErr := range fetches.Errors() {
			fail(fmt.Sprintf("fetch %s[%d]: %v", fetchErr.Topic, fetchErr.Partition, fetchErr.Err))
		}
		fetches.EachRecord(func(record *kgo.Record) {
			encoder.Encode(toLine(record))
			seen++
		})
	}
	if inGroup {
		if err := client.CommitUncommittedOffsets(ctx); err != nil {
			fail("commit: " + err.Error())
		}
	}
}

func toLine(record *kgo.Record) line {
	headers := map[string][]byte{}
	for _, header := range record.Headers {
		headers[header.Key] = header.Value
	}
	return line{record.Partition, record.Offset, record.Key, record.Value, headers, record.Timestamp.UnixMilli()}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "franzgo-compat:", message)
	os.Exit(1)
}
