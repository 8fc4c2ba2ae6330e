import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Kafka's Java client with transactions against a broker, for tests/compat/test_java_transactions.py.
 *
 * <pre>
 * java JavaTransactions commit-abort BOOTSTRAP TOPIC PARTITIONS TRANSACTIONAL_ID GROUP
 * java JavaTransactions fence BOOTSTRAP TOPIC TRANSACTIONAL_ID
 * java JavaTransactions hold BOOTSTRAP TOPIC PARTITIONS TRANSACTIONAL_ID
 * java JavaTransactions crash BOOTSTRAP TOPIC PARTITIONS TRANSACTIONAL_ID TIMEOUT_MS
 * java JavaTransactions read BOOTSTRAP TOPIC PARTITIONS
 * </pre>
 *
 * The program does the scenario and prints what a user would look at, one fact a line, for the test
 * to compare with what Kafka's semantics demand; it checks nothing itself beyond "the call did not
 * throw". Lines:
 * <ul>
 * <li>{@code acked NAME PARTITION OFFSET} for each acknowledged send of transaction NAME;</li>
 * <li>{@code end ISOLATION PARTITION OFFSET}: what endOffsets() gives a read_committed consumer (the
 * last stable offset) and a read_uncommitted one (the high watermark);</li>
 * <li>{@code record LABEL PARTITION OFFSET KEY VALUE}: every record a consumer read from the start of
 * the topic up to its end offset, LABEL naming the consumer ({@code read_committed},
 * {@code read_uncommitted}, or with a suffix for reads done while a transaction is open);</li>
 * <li>{@code group-offset LABEL TOPIC PARTITION OFFSET}: the group's committed offset (-1: none);</li>
 * <li>{@code fenced OPERATION EXCEPTION_CLASS} when an operation of a fenced producer failed.</li>
 * </ul>
 *
 * commit-abort: three transactions, each sending RECORDS_PER_PARTITION records to every partition
 * and the group offset of (TOPIC, 0) with sendOffsetsToTransaction: "first" (offset 3) committed,
 * "aborted" (offset 99) aborted, "second" (offset 6) committed. While "second" is open, the end
 * offsets, the records each consumer reads and the group's offset as the Admin client lists it are
 * printed with the suffix "-open"; after its commit, the same again, the group offset as a
 * read_committed consumer's committed() sees it (OffsetFetch with require_stable).
 *
 * fence: producer "zombie" begins a transaction and sends one record; producer "successor" with the
 * same transactional.id calls initTransactions, which fences the zombie; the zombie then tries to send
 * and to commit (each failure printed), and the successor commits a transaction of its own.
 *
 * hold: begins a transaction, sends one record to each partition, prints "open" and waits for a
 * line on stdin: "commit" or "abort"; does it, prints "committed" or "aborted", and exits.
 *
 * crash: with transaction.timeout.ms TIMEOUT_MS, begins a transaction, sends one record to each
 * partition, prints "open" and halts the JVM without closing anything, as a process that crashed.
 *
 * Exit status 1 and one line on stderr when anything unexpected was thrown or timed out.
 */
public final class JavaTransactions {
    private static final long DEADLINE_MS = 60_000;
    private static final int RECORDS_PER_PARTITION = 3;

    public static void main(String[] args) throws Exception {
        try {
            switch (args[0]) {
                case "commit-abort":
                    commitAbort(args[1], args[2], Integer.parseInt(args[3]), args[4], args[5]);
                    break;
                case "fence":
                    fence(args[1], args[2], args[3], args[4]);
                    break;
                case "hold":
                    hold(args[1], args[2], Integer.parseInt(args[3]), args[4]);
                    break;
                case "read":
                    read(args[1], args[2], Integer.parseInt(args[3]));
                    break;
                case "crash":
                    crash(args[1], args[2], Integer.parseInt(args[3]), args[4], Integer.parseInt(args[5]));
                    break;
                default:
                    fail("unknown scenario " + args[0]);
            }
        } catch (Exception e) {
            e.printStackTrace();
            fail(args[0] + ": " + e);
        }
        System.out.flush();
        System.exit(0);
    }

    // --- scenarios ---

    private static void commitAbort(String bootstrap, String topic, int partitions, String transactionalId,
            String group) throws Exception {
        List<TopicPartition> assignment = partitions(topic, partitions);
        TopicPartition consumed = new TopicPartition(topic, 0);
        // the group's metadata as a consume-transform-produce application passes it: from its consumer
        // (here one that has joined no generation: a simple group, as with assign())
        ConsumerGroupMetadata groupMetadata;
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "read_committed", group)) {
            groupMetadata = consumer.groupMetadata();
        }
        try (KafkaProducer<String, String> producer = producer(bootstrap, transactionalId, null)) {
            producer.initTransactions();

            producer.beginTransaction();
            sendToEach(producer, topic, partitions, "first");
            producer.sendOffsetsToTransaction(Collections.singletonMap(consumed, new OffsetAndMetadata(3)), groupMetadata);
            producer.commitTransaction();

            producer.beginTransaction();
            sendToEach(producer, topic, partitions, "aborted");
            producer.sendOffsetsToTransaction(Collections.singletonMap(consumed, new OffsetAndMetadata(99)), groupMetadata);
            producer.abortTransaction();

            producer.beginTransaction();
            sendToEach(producer, topic, partitions, "second");
            producer.sendOffsetsToTransaction(Collections.singletonMap(consumed, new OffsetAndMetadata(6)), groupMetadata);
            // the transaction is open: its records and its offset must not be visible to the committed view
            printEndOffsets(bootstrap, assignment, "-open");
            readAll(bootstrap, assignment, "read_committed", "read_committed-open");
            readAll(bootstrap, assignment, "read_uncommitted", "read_uncommitted-open");
            printAdminGroupOffset(bootstrap, group, consumed, "admin-open");
            producer.commitTransaction();
        }
        awaitNoOpenTransaction(bootstrap, assignment);
        printEndOffsets(bootstrap, assignment, "");
        readAll(bootstrap, assignment, "read_committed", "read_committed");
        readAll(bootstrap, assignment, "read_uncommitted", "read_uncommitted");
        printCommittedGroupOffset(bootstrap, group, consumed, "committed");
    }

    private static void fence(String bootstrap, String topic, String transactionalId, String zombieNext)
            throws Exception {
        List<TopicPartition> assignment = partitions(topic, 1);
        KafkaProducer<String, String> zombie = producer(bootstrap, transactionalId, "zombie");
        zombie.initTransactions();
        zombie.beginTransaction();
        ack("zombie", zombie.send(new ProducerRecord<>(topic, 0, "zombie", "zombie-0")).get());
        try (KafkaProducer<String, String> successor = producer(bootstrap, transactionalId, "successor")) {
            successor.initTransactions();  // fences the zombie and aborts its open transaction
            System.out.println("successor initialized");
            if (zombieNext.equals("send")) {
                try {
                    zombie.send(new ProducerRecord<>(topic, 0, "zombie", "zombie-1")).get();
                    System.out.println("zombie send succeeded");
                } catch (ExecutionException e) {
                    System.out.println("fenced send " + e.getCause().getClass().getName());
                }
            }
            try {
                zombie.commitTransaction();
                System.out.println("zombie commit succeeded");
            } catch (Exception e) {
                System.out.println("fenced commit " + e.getClass().getName());
            }
            try {
                zombie.abortTransaction();
                System.out.println("zombie abort succeeded");
            } catch (Exception e) {
                System.out.println("fenced abort " + e.getClass().getName());
            }
            zombie.close(Duration.ZERO);
            successor.beginTransaction();
            ack("successor", successor.send(new ProducerRecord<>(topic, 0, "successor", "successor-0")).get());
            successor.commitTransaction();
        }
        awaitNoOpenTransaction(bootstrap, assignment);
        readAll(bootstrap, assignment, "read_committed", "read_committed");
        readAll(bootstrap, assignment, "read_uncommitted", "read_uncommitted");
    }

    private static void hold(String bootstrap, String topic, int partitions, String transactionalId) throws Exception {
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (KafkaProducer<String, String> producer = producer(bootstrap, transactionalId, null)) {
            producer.initTransactions();
            producer.beginTransaction();
            sendToEach(producer, topic, partitions, "held", 1);
            System.out.println("open");
            System.out.flush();
            String command = stdin.readLine();
            if ("commit".equals(command)) {
                producer.commitTransaction();
                System.out.println("committed");
            } else if ("abort".equals(command)) {
                producer.abortTransaction();
                System.out.println("aborted");
            } else {
                fail("hold: expected commit or abort on stdin, got " + command);
            }
        }
    }

    private static void crash(String bootstrap, String topic, int partitions, String transactionalId, int timeoutMs)
            throws Exception {
        KafkaProducer<String, String> producer = producer(bootstrap, transactionalId, null, timeoutMs);
        producer.initTransactions();
        producer.beginTransaction();
        sendToEach(producer, topic, partitions, "crashed", 1);
        System.out.println("open");
        System.out.flush();
        Runtime.getRuntime().halt(0);  // no commit, no abort, no close: the broker is left with an open transaction
    }

    private static void read(String bootstrap, String topic, int partitions) throws Exception {
        List<TopicPartition> assignment = partitions(topic, partitions);
        awaitNoOpenTransaction(bootstrap, assignment);
        printEndOffsets(bootstrap, assignment, "");
        readAll(bootstrap, assignment, "read_committed", "read_committed");
        readAll(bootstrap, assignment, "read_uncommitted", "read_uncommitted");
    }

    // --- helpers ---

    static List<TopicPartition> partitions(String topic, int count) {
        List<TopicPartition> list = new ArrayList<>();
        for (int p = 0; p < count; p++) {
            list.add(new TopicPartition(topic, p));
        }
        return list;
    }

    private static KafkaProducer<String, String> producer(String bootstrap, String transactionalId, String name) {
        return producer(bootstrap, transactionalId, name, 0);
    }

    private static KafkaProducer<String, String> producer(String bootstrap, String transactionalId, String name,
            int transactionTimeoutMs) {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.CLIENT_ID_CONFIG, "java-txn-" + (name != null ? name : "producer"));
        config.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, Long.toString(DEADLINE_MS));
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Long.toString(DEADLINE_MS));
        if (transactionTimeoutMs > 0) {
            config.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, Integer.toString(transactionTimeoutMs));
        }
        return new KafkaProducer<>(config, new StringSerializer(), new StringSerializer());
    }

    private static void sendToEach(KafkaProducer<String, String> producer, String topic, int partitions, String name)
            throws Exception {
        sendToEach(producer, topic, partitions, name, RECORDS_PER_PARTITION);
    }

    /** Sends `perPartition` records "NAME-P-I" with key NAME to every partition; waits for every acknowledgement. */
    private static void sendToEach(KafkaProducer<String, String> producer, String topic, int partitions, String name,
            int perPartition) throws Exception {
        List<java.util.concurrent.Future<RecordMetadata>> sends = new ArrayList<>();
        for (int i = 0; i < perPartition; i++) {
            for (int p = 0; p < partitions; p++) {
                sends.add(producer.send(new ProducerRecord<>(topic, p, name, name + "-" + p + "-" + i)));
            }
        }
        for (java.util.concurrent.Future<RecordMetadata> send : sends) {
            ack(name, send.get());
        }
    }

    private static void ack(String name, RecordMetadata metadata) {
        System.out.println("acked " + name + " " + metadata.partition() + " " + metadata.offset());
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String isolation, String group) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, "java-txn-" + isolation);
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, Long.toString(DEADLINE_MS));
        if (group != null) {
            config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        return new KafkaConsumer<>(config, new StringDeserializer(), new StringDeserializer());
    }

    private static Map<TopicPartition, Long> endOffsets(String bootstrap, List<TopicPartition> assignment, String isolation) {
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, isolation, null)) {
            return consumer.endOffsets(assignment);
        }
    }

    static void printEndOffsets(String bootstrap, List<TopicPartition> assignment, String suffix) {
        for (String isolation : new String[] {"read_committed", "read_uncommitted"}) {
            Map<TopicPartition, Long> ends = endOffsets(bootstrap, assignment, isolation);
            for (TopicPartition tp : assignment) {
                System.out.println("end " + isolation + suffix + " " + tp.partition() + " " + ends.get(tp));
            }
        }
    }

    /**
     * Waits until no transaction is open on the partitions: the last stable offset equals the high
     * watermark. commitTransaction() returns before the broker has written every transaction marker.
     */
    static void awaitNoOpenTransaction(String bootstrap, List<TopicPartition> assignment) throws Exception {
        long deadline = System.currentTimeMillis() + DEADLINE_MS;
        try (KafkaConsumer<String, String> committed = consumer(bootstrap, "read_committed", null);
                KafkaConsumer<String, String> uncommitted = consumer(bootstrap, "read_uncommitted", null)) {
            while (true) {
                Map<TopicPartition, Long> stable = committed.endOffsets(assignment);
                Map<TopicPartition, Long> high = uncommitted.endOffsets(assignment);
                if (stable.equals(high)) {
                    return;
                }
                if (System.currentTimeMillis() > deadline) {
                    fail("a transaction is still open " + DEADLINE_MS + " ms after its end: last stable offsets "
                            + stable + ", high watermarks " + high);
                }
                Thread.sleep(50);
            }
        }
    }

    /** Reads every partition from its start to its end offset (for read_committed, the last stable offset). */
    static void readAll(String bootstrap, List<TopicPartition> assignment, String isolation, String label) {
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, isolation, null)) {
            consumer.assign(assignment);
            consumer.seekToBeginning(assignment);
            Map<TopicPartition, Long> ends = consumer.endOffsets(assignment);
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            Set<TopicPartition> remaining = new HashSet<>(assignment);
            Map<Integer, List<String>> lines = new HashMap<>();
            while (true) {
                remaining.removeIf(tp -> consumer.position(tp) >= ends.get(tp));
                if (remaining.isEmpty()) {
                    break;
                }
                if (System.currentTimeMillis() > deadline) {
                    Map<TopicPartition, Long> positions = new HashMap<>();
                    for (TopicPartition tp : remaining) {
                        positions.put(tp, consumer.position(tp));
                    }
                    fail(label + ": positions " + positions + " did not reach the end offsets " + ends);
                }
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    lines.computeIfAbsent(record.partition(), p -> new ArrayList<>()).add(
                            "record " + label + " " + record.partition() + " " + record.offset() + " " + record.key()
                                    + " " + record.value());
                }
            }
            for (TopicPartition tp : assignment) {
                for (String line : lines.getOrDefault(tp.partition(), Collections.emptyList())) {
                    System.out.println(line);
                }
            }
        }
    }

    /** The group's offset as Kafka's Admin client lists it (OffsetFetch without require_stable). */
    private static void printAdminGroupOffset(String bootstrap, String group, TopicPartition tp, String label)
            throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            Map<TopicPartition, OffsetAndMetadata> offsets =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            OffsetAndMetadata offset = offsets.get(tp);
            System.out.println("group-offset " + label + " " + tp.topic() + " " + tp.partition() + " "
                    + (offset == null ? -1 : offset.offset()));
        }
    }

    /** The group's offset as a read_committed consumer sees it: OffsetFetch with require_stable, retried while unstable. */
    private static void printCommittedGroupOffset(String bootstrap, String group, TopicPartition tp, String label) {
        try (KafkaConsumer<String, String> consumer = consumer(bootstrap, "read_committed", group)) {
            OffsetAndMetadata offset = consumer.committed(Collections.singleton(tp)).get(tp);
            System.out.println("group-offset " + label + " " + tp.topic() + " " + tp.partition() + " "
                    + (offset == null ? -1 : offset.offset()));
        }
    }

    static void fail(String message) {
        System.out.flush();
        System.err.println("JavaTransactions: " + message);
        System.exit(1);
    }
}
