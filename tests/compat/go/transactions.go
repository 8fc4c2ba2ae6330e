package main

// transact: franz-go's transactional producer, for tests/compat/test_franz_go_transactions.py.
//
//	franzgo-compat transact -brokers B -topic T -partitions P -transactional-id ID
//
// Three transactions, each producing 3 records "NAME-P-I" (key NAME) to every partition 0..P-1:
// "first" committed, "aborted" aborted, "second" committed. One JSON line per acknowledged record
// ({"transaction", "partition", "offset"}). Then a read_committed consumer
// (kgo.FetchIsolationLevel(kgo.ReadCommitted()), direct partition assignment) reads the topic from
// the start and prints one JSON line per record ({"partition", "offset", "key", "value"}) until it
// has as many records as were committed; an aborted record, were it delivered, would come before
// the last committed ones of its partition, and so be among them.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kgo"
)

const recordsPerPartition = 3

type acked struct {
	Transaction string `json:"transaction"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
}

type committedRecord struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Value     string `json:"value"`
}

func transact(ctx context.Context, opts []kgo.Opt, topic string, partitions int, transactionalID string) {
	producer, err := kgo.NewClient(append(opts, kgo.TransactionalID(transactionalID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		fail("new client: " + err.Error())
	}
	encoder := json.NewEncoder(os.Stdout)
	for _, step := range []struct {
		name string
		end  kgo.TransactionEndTry
	}{{"first", kgo.TryCommit}, {"aborted", kgo.TryAbort}, {"second", kgo.TryCommit}} {
		if err := producer.BeginTransaction(); err != nil {
			fail(step.name + ": begin: " + err.Error())
		}
		var records []*kgo.Record
		for i := 0; i < recordsPerPartition; i++ {
			for p := 0; p < partitions; p++ {
				records = append(records, &kgo.Record{Topic: topic, Partition: int32(p), Key: []byte(step.name),
					Value: []byte(fmt.Sprintf("%s-%d-%d", step.name, p, i))})
			}
		}
		results := producer.ProduceSync(ctx, records...)
		if err := results.FirstErr(); err != nil {
			fail(step.name + ": produce: " + err.Error())
		}
		for _, result := range results {
			encoder.Encode(acked{step.name, result.Record.Partition, result.Record.Offset})
		}
		if err := producer.EndTransaction(ctx, step.end); err != nil {
			fail(step.name + ": end: " + err.Error())
		}
	}
	producer.Close()

	offsets := map[int32]kgo.Offset{}
	for p := 0; p < partitions; p++ {
		offsets[int32(p)] = kgo.NewOffset().AtStart()
	}
	consumer, err := kgo.NewClient(append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))...)
	if err != nil {
		fail("new client: " + err.Error())
	}
	defer consumer.Close()
	want := 2 * recordsPerPartition * partitions
	seen := 0
	for seen < want {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			fail(fmt.Sprintf("read_committed: timed out after %d of %d records", seen, want))
		}
		for _, fetchErr := range fetches.Errors() {
			fail(fmt.Sprintf("fetch %s[%d]: %v", fetchErr.Topic, fetchErr.Partition, fetchErr.Err))
		}
		fetches.EachRecord(func(record *kgo.Record) {
			encoder.Encode(committedRecord{record.Partition, record.Offset, string(record.Key), string(record.Value)})
			seen++
		})
	}
}
