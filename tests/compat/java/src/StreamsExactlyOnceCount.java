import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.Stores;

/**
 * A Kafka Streams application with processing.guarantee=exactly_once_v2, for
 * tests/compat/test_java_transactions.py.
 *
 * <pre>java StreamsExactlyOnceCount BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR EXPECTED</pre>
 *
 * Topology: lower-case each input value (stateless), re-key by the value (a repartition topic), count
 * per word in an in-memory store (a changelog topic), and write "word -> count" to OUTPUT, every
 * update (no record cache). Under exactly_once_v2 each commit is one transaction of the stream thread's
 * producer over the repartition, changelog and output partitions and the input offsets of the
 * application's group.
 *
 * The application runs, with one stream thread and a 100 ms commit interval, until a read_committed
 * consumer has read EXPECTED records from OUTPUT (deadline 60 s); then it is closed. Printed after:
 * "streams STATE" (its state after close), one "record read_committed PARTITION OFFSET WORD COUNT"
 * line per record of OUTPUT read from the start to the last stable offset, and one
 * "input-offset PARTITION OFFSET" line per input partition with the application's committed offset.
 * Exit status 1 and a line on stderr when the application failed or the deadline passed.
 */
public final class StreamsExactlyOnceCount {
    private static final long DEADLINE_MS = 60_000;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String applicationId = args[1];
        String input = args[2];
        String output = args[3];
        String stateDir = args[4];
        int expected = Integer.parseInt(args[5]);

        Properties config = new Properties();
        config.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        config.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        config.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        config.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        config.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        config.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        config.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .mapValues(value -> value.toLowerCase())
                .groupBy((key, word) -> word, Grouped.with("by-word", Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long>as(Stores.inMemoryKeyValueStore("word-counts"))
                        .withKeySerde(Serdes.String()).withValueSerde(Serdes.Long()))
                .toStream()
                .mapValues(count -> Long.toString(count))
                .to(output, Produced.with(Serdes.String(), Serdes.String()));

        AtomicReference<Throwable> failure = new AtomicReference<>();
        KafkaStreams streams = new KafkaStreams(builder.build(), config);
        streams.setUncaughtExceptionHandler(exception -> {
            failure.compareAndSet(null, exception);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        int seen;
        try {
            seen = awaitOutput(bootstrap, output, expected, failure);
        } finally {
            // leave the group, so that the next run of the application is assigned its tasks at once
            streams.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                    .withTimeout(Duration.ofSeconds(30)));
        }
        System.out.println("streams " + streams.state());
        if (failure.get() != null) {
            failure.get().printStackTrace();
            JavaTransactions.fail("the application failed: " + failure.get());
        }
        if (seen < expected) {
            JavaTransactions.fail("read_committed saw " + seen + " of " + expected + " output records within "
                    + DEADLINE_MS + " ms");
        }

        List<TopicPartition> outputPartitions = partitionsOf(bootstrap, output);
        JavaTransactions.awaitNoOpenTransaction(bootstrap, outputPartitions);
        JavaTransactions.printEndOffsets(bootstrap, outputPartitions, "");
        JavaTransactions.readAll(bootstrap, outputPartitions, "read_committed", "read_committed");
        List<TopicPartition> inputPartitions = partitionsOf(bootstrap, input);
        try (KafkaConsumer<String, String> consumer = JavaTransactions.consumer(bootstrap, "read_committed", applicationId)) {
            Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(new java.util.HashSet<>(inputPartitions));
            for (TopicPartition tp : inputPartitions) {
                OffsetAndMetadata offset = committed.get(tp);
                System.out.println("input-offset " + tp.partition() + " " + (offset == null ? -1 : offset.offset()));
            }
        }
        System.out.flush();
        System.exit(0);
    }

    private static List<TopicPartition> partitionsOf(String bootstrap, String topic) {
        try (KafkaConsumer<String, String> consumer = JavaTransactions.consumer(bootstrap, "read_committed", null)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo info : consumer.partitionsFor(topic)) {
                partitions.add(new TopicPartition(topic, info.partition()));
            }
            Collections.sort(partitions, (a, b) -> Integer.compare(a.partition(), b.partition()));
            return partitions;
        }
    }

    /** Reads OUTPUT with read_committed until `expected` records arrived, the application failed or the deadline passed. */
    private static int awaitOutput(String bootstrap, String output, int expected, AtomicReference<Throwable> failure) {
        List<TopicPartition> partitions = partitionsOf(bootstrap, output);
        int seen = 0;
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        try (KafkaConsumer<String, String> consumer = JavaTransactions.consumer(bootstrap, "read_committed", null)) {
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            while (seen < expected && failure.get() == null && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    seen++;
                }
            }
        }
        return seen;
    }
}
