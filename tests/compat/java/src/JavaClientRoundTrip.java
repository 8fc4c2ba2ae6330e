import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Kafka's Java client against a broker, for tests/compat/test_java_client.py.
 *
 * <pre>java JavaClientRoundTrip BOOTSTRAP TOPIC PARTITIONS COUNT assign|group [GROUP]</pre>
 *
 * Produces COUNT records with the producer's defaults (in 4.x: idempotent, acks=all): record i goes
 * to partition i % PARTITIONS with key "key-i", value "value-i" plus the bytes 0x00 0xff, a header
 * "index"="i" and timestamp 1700000000000+i. Every send must be acknowledged at the offset that
 * follows the previous one of its partition. Then a consumer reads them all back, by assign() and
 * seekToBeginning() ("assign") or by subscribe() in GROUP ("group", committing at the end), and
 * compares each record field by field. Prints "produced N" and "verified N" on success; any
 * difference is one line on stderr and exit status 1. The system property "compression" sets the
 * producer's compression.type (default none).
 */
public final class JavaClientRoundTrip {
    private static final long BASE_TIMESTAMP_MS = 1_700_000_000_000L;
    private static final long DEADLINE_MS = 120_000;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        int count = Integer.parseInt(args[3]);
        String mode = args[4];

        produce(bootstrap, topic, partitions, count);
        System.out.println("produced " + count);
        consumeAndCompare(bootstrap, topic, partitions, count, mode, args.length > 5 ? args[5] : null);
        System.out.println("verified " + count);
    }

    private static byte[] key(int i) {
        return ("key-" + i).getBytes(StandardCharsets.UTF_8);
    }

    private static byte[] value(int i) {
        byte[] text = ("value-" + i).getBytes(StandardCharsets.UTF_8);
        byte[] value = Arrays.copyOf(text, text.length + 2);
        value[text.length] = 0x00;
        value[text.length + 1] = (byte) 0xff;
        return value;
    }

    private static void produce(String bootstrap, String topic, int partitions, int count) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.CLIENT_ID_CONFIG, "java-compat-producer");
        config.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, System.getProperty("compression", "none"));
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(config, new ByteArraySerializer(), new ByteArraySerializer())) {
            List<Future<RecordMetadata>> sends = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(
                        topic, i % partitions, BASE_TIMESTAMP_MS + i, key(i), value(i));
                record.headers().add("index", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                sends.add(producer.send(record));
            }
            producer.flush();
            long[] nextOffset = new long[partitions];
            for (int i = 0; i < count; i++) {
                RecordMetadata metadata = sends.get(i).get();
                int partition = i % partitions;
                if (metadata.partition() != partition || metadata.offset() != nextOffset[partition]) {
                    fail("record " + i + ": acknowledged at " + metadata.partition() + "@" + metadata.offset()
                            + ", expected " + partition + "@" + nextOffset[partition]);
                }
                nextOffset[partition]++;
            }
        }
    }

    private static void consumeAndCompare(String bootstrap, String topic, int partitions, int count, String mode,
            String group) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, "java-compat-consumer");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        if (group != null) {
            config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        try (KafkaConsumer<byte[], byte[]> consumer =
                new KafkaConsumer<>(config, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            if (mode.equals("group")) {
                consumer.subscribe(Collections.singletonList(topic));
            } else {
                List<TopicPartition> assignment = new ArrayList<>();
                for (int p = 0; p < partitions; p++) {
                    assignment.add(new TopicPartition(topic, p));
                }
                consumer.assign(assignment);
                consumer.seekToBeginning(assignment);
            }
            long[] nextOffset = new long[partitions];
            int received = 0;
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (received < count) {
                if (System.currentTimeMillis() > deadline) {
                    fail("timed out after " + received + " of " + count + " records");
                }
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
                    int p = record.partition();
                    if (record.offset() != nextOffset[p]) {
                        fail("partition " + p + ": got offset " + record.offset() + ", expected " + nextOffset[p]);
                    }
                    int i = (int) (nextOffset[p] * partitions + p);
                    compare(i, record);
                    nextOffset[p]++;
                    received++;
                }
            }
            if (mode.equals("group")) {
                consumer.commitSync();
            }
        }
    }

    private static void compare(int i, ConsumerRecord<byte[], byte[]> record) {
        String where = record.partition() + "@" + record.offset() + " (record " + i + ")";
        if (!Arrays.equals(record.key(), key(i))) {
            fail(where + ": key " + Arrays.toString(record.key()) + ", expected " + Arrays.toString(key(i)));
        }
        if (!Arrays.equals(record.value(), value(i))) {
            fail(where + ": value " + Arrays.toString(record.value()) + ", expected " + Arrays.toString(value(i)));
        }
        if (record.timestamp() != BASE_TIMESTAMP_MS + i) {
            fail(where + ": timestamp " + record.timestamp() + ", expected " + (BASE_TIMESTAMP_MS + i));
        }
        Header[] headers = record.headers().toArray();
        if (headers.length != 1 || !headers[0].key().equals("index")
                || !new String(headers[0].value(), StandardCharsets.UTF_8).equals(Integer.toString(i))) {
            fail(where + ": headers " + Arrays.toString(headers) + ", expected [index=" + i + "]");
        }
    }

    private static void fail(String message) {
        System.err.println("JavaClientRoundTrip: " + message);
        System.exit(1);
    }
}
