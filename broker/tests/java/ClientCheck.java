// The Apache Kafka Java client against a broker, with the client's defaults
// where it matters: the producer runs with its default configuration
// (enable.idempotence=true, acks=all, retries, max.in.flight=5), the consumer
// subscribe()s in a consumer group and commits its offsets.
//
// Run as a single-file source program (Java 11+):
//   java -cp "<kafka libs>/*" ClientCheck.java BOOTSTRAP TOPIC [RECORDS] [GROUP] [PROTOCOL]
//
// PROTOCOL is the consumer's group.protocol: "classic" (the default; JoinGroup
// / SyncGroup / Heartbeat) or "consumer" (KIP-848: ConsumerGroupHeartbeat with
// a broker-side assignor). Nothing else of the consumer configuration depends
// on it: the classic-only settings (partition.assignment.strategy,
// session.timeout.ms, heartbeat.interval.ms), which the client rejects with
// group.protocol=consumer, stay unset for both.
//
// Prints one JSON object on stdout (the last line) with what was produced,
// consumed and committed; the pytest suite asserts on it. The exit code is 0
// when every check passed, 1 when one failed, 2 on a usage error. Every wait is
// bounded (DEADLINE_MS overall).

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class ClientCheck {
    static final long DEADLINE_MS = 60_000;

    public static void main(String[] args) {
        if (args.length < 2) {
            System.err.println("usage: ClientCheck BOOTSTRAP TOPIC [RECORDS] [GROUP] [classic|consumer]");
            System.exit(2);
        }
        if (args.length > 4 && !args[4].equals("classic") && !args[4].equals("consumer")) {
            System.err.println("ClientCheck: group protocol must be classic or consumer, not " + args[4]);
            System.exit(2);
        }
        List<String> failures = new ArrayList<>();
        Map<String, Object> out = new TreeMap<>();
        try {
            run(args, out, failures);
        } catch (Throwable t) {
            // Report it here: the source launcher of some JDK 17 builds fails
            // while trimming the stack trace of an exception leaving main.
            t.printStackTrace();
            out.put("error", t.toString());
            failures.add("exception: " + t);
        }
        out.put("failures", failures);
        out.put("ok", failures.isEmpty());
        System.out.println(toJson(out));
        System.out.flush();
        System.exit(failures.isEmpty() ? 0 : 1);
    }

    static void run(String[] args, Map<String, Object> out, List<String> failures) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int n = args.length > 2 ? Integer.parseInt(args[2]) : 10_000;
        String group = args.length > 3 ? args[3] : "client-check-" + topic;
        String protocol = args.length > 4 ? args[4] : "classic";
        long deadline = System.currentTimeMillis() + DEADLINE_MS;

        out.put("topic", topic);
        out.put("group", group);
        out.put("group_protocol", protocol);
        out.put("records", n);

        // ---- produce: default producer config (idempotent, acks=all) --------
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.CLIENT_ID_CONFIG, "client-check-producer");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        // Only a bound on how long a send may take; everything else is default.
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        ProducerConfig effective = new ProducerConfig(pp);
        out.put("producer_enable_idempotence", effective.getBoolean(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG));
        out.put("producer_acks", effective.getString(ProducerConfig.ACKS_CONFIG));

        // partition -> offset -> "key=value" as acknowledged by the broker
        Map<Integer, Map<Long, String>> acked = new TreeMap<>();
        ConcurrentLinkedQueue<String> sendErrors = new ConcurrentLinkedQueue<>();
        ConcurrentLinkedQueue<long[]> ackQueue = new ConcurrentLinkedQueue<>();
        long produceStart = System.nanoTime();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            for (int i = 0; i < n; i++) {
                final int idx = i;
                producer.send(new ProducerRecord<>(topic, "k" + (i % 97), "v" + i), (md, ex) -> {
                    if (ex != null) {
                        sendErrors.add("record " + idx + ": " + ex);
                    } else {
                        ackQueue.add(new long[] {md.partition(), md.offset(), idx});
                    }
                });
            }
            producer.flush();
        }
        out.put("produce_ms", (System.nanoTime() - produceStart) / 1_000_000);
        for (long[] a : ackQueue) {
            int idx = (int) a[2];
            String prev = acked.computeIfAbsent((int) a[0], p -> new TreeMap<>())
                    .put(a[1], "k" + (idx % 97) + "=v" + idx);
            if (prev != null) {
                failures.add("two records acknowledged at partition " + a[0] + " offset " + a[1]);
            }
        }
        int ackCount = ackQueue.size();
        out.put("acked", ackCount);
        out.put("send_errors", sendErrors.size());
        if (!sendErrors.isEmpty()) {
            failures.add(sendErrors.size() + " sends failed, first: " + sendErrors.peek());
        }
        if (ackCount != n) {
            failures.add("acknowledged " + ackCount + " of " + n);
        }
        // An idempotent producer into a fresh topic: offsets 0..k-1, no gaps.
        Map<Integer, Long> ackedPerPartition = new TreeMap<>();
        for (Map.Entry<Integer, Map<Long, String>> e : acked.entrySet()) {
            long count = e.getValue().size();
            ackedPerPartition.put(e.getKey(), count);
            long first = ((TreeMap<Long, String>) e.getValue()).firstKey();
            long last = ((TreeMap<Long, String>) e.getValue()).lastKey();
            if (first != 0 || last != count - 1) {
                failures.add("partition " + e.getKey() + ": acked offsets " + first + ".." + last
                        + " for " + count + " records (want 0.." + (count - 1) + ")");
            }
        }
        out.put("acked_per_partition", ackedPerPartition);

        // ---- consume: subscribe() in a group, commitSync after every poll -----
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cp.put(ConsumerConfig.CLIENT_ID_CONFIG, "client-check-consumer");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);

        Map<Integer, Map<Long, String>> consumed = new TreeMap<>();
        int consumedCount = 0;
        int duplicates = 0;
        int unexpected = 0;
        int commits = 0;
        List<String> assignments = new ArrayList<>();
        List<Integer> finalAssignment = new ArrayList<>();
        String memberId = null;
        int generation = -1;
        Map<Integer, Long> committed = new TreeMap<>();
        Map<Integer, Long> endOffsets = new TreeMap<>();
        long consumeStart = System.nanoTime();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(java.util.Collection<TopicPartition> parts) {}

                @Override
                public void onPartitionsAssigned(java.util.Collection<TopicPartition> parts) {
                    List<Integer> ps = new ArrayList<>();
                    for (TopicPartition tp : parts) ps.add(tp.partition());
                    java.util.Collections.sort(ps);
                    assignments.add(ps.toString());
                }
            });
            while (consumedCount + duplicates < ackCount && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> recs = consumer.poll(Duration.ofMillis(500));
                if (recs.isEmpty()) continue;
                for (ConsumerRecord<String, String> r : recs) {
                    String kv = r.key() + "=" + r.value();
                    String want = acked.getOrDefault(r.partition(), Map.of()).get(r.offset());
                    String prev = consumed.computeIfAbsent(r.partition(), p -> new TreeMap<>()).put(r.offset(), kv);
                    if (prev != null) {
                        duplicates++;
                    } else {
                        consumedCount++;
                    }
                    if (!kv.equals(want)) {
                        unexpected++;
                        if (unexpected <= 5) {
                            failures.add("partition " + r.partition() + " offset " + r.offset() + ": got " + kv
                                    + ", produced " + want);
                        }
                    }
                }
                consumer.commitSync(Duration.ofSeconds(30));
                commits++;
            }
            for (TopicPartition tp : consumer.assignment()) finalAssignment.add(tp.partition());
            java.util.Collections.sort(finalAssignment);
            // classic: the JoinGroup member id and generation; consumer: the
            // member id and the member epoch of ConsumerGroupHeartbeat.
            memberId = consumer.groupMetadata().memberId();
            generation = consumer.groupMetadata().generationId();
            Set<TopicPartition> parts = new HashSet<>();
            for (PartitionInfo pi : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                parts.add(new TopicPartition(topic, pi.partition()));
            }
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e
                    : consumer.committed(parts, Duration.ofSeconds(30)).entrySet()) {
                committed.put(e.getKey().partition(), e.getValue() == null ? -1L : e.getValue().offset());
            }
            for (Map.Entry<TopicPartition, Long> e : consumer.endOffsets(parts, Duration.ofSeconds(30)).entrySet()) {
                endOffsets.put(e.getKey().partition(), e.getValue());
            }
        }
        out.put("consume_ms", (System.nanoTime() - consumeStart) / 1_000_000);
        out.put("consumed", consumedCount);
        out.put("duplicates", duplicates);
        out.put("unexpected", unexpected);
        out.put("commits", commits);
        out.put("assignments", assignments);
        out.put("final_assignment", finalAssignment);
        out.put("member_id", memberId);
        out.put("generation", generation);
        out.put("committed", committed);
        out.put("end_offsets", endOffsets);

        int missing = 0;
        for (Map.Entry<Integer, Map<Long, String>> e : acked.entrySet()) {
            Map<Long, String> got = consumed.getOrDefault(e.getKey(), Map.of());
            for (Long off : e.getValue().keySet()) {
                if (!got.containsKey(off)) missing++;
            }
        }
        out.put("missing", missing);
        if (missing > 0) failures.add(missing + " acknowledged records never consumed");
        if (duplicates > 0) failures.add(duplicates + " records consumed twice");
        if (unexpected > 0) failures.add(unexpected + " consumed records differ from what was produced");
        if (consumedCount != ackCount) failures.add("consumed " + consumedCount + " of " + ackCount);
        if (!committed.equals(endOffsets)) {
            failures.add("committed offsets " + committed + " != end offsets " + endOffsets);
        }
        Map<Integer, Long> wantEnd = new HashMap<>();
        for (Map.Entry<Integer, Long> e : endOffsets.entrySet()) {
            wantEnd.put(e.getKey(), ackedPerPartition.getOrDefault(e.getKey(), 0L));
        }
        if (!wantEnd.equals(endOffsets)) {
            failures.add("end offsets " + endOffsets + " != acknowledged records per partition " + ackedPerPartition);
        }
    }

    // A tiny JSON writer for maps, lists, strings, numbers and booleans.
    static String toJson(Object o) {
        StringBuilder sb = new StringBuilder();
        write(sb, o);
        return sb.toString();
    }

    static void write(StringBuilder sb, Object o) {
        if (o == null) {
            sb.append("null");
        } else if (o instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                if (!first) sb.append(',');
                first = false;
                write(sb, String.valueOf(e.getKey()));
                sb.append(':');
                write(sb, e.getValue());
            }
            sb.append('}');
        } else if (o instanceof Iterable) {
            sb.append('[');
            boolean first = true;
            for (Object x : (Iterable<?>) o) {
                if (!first) sb.append(',');
                first = false;
                write(sb, x);
            }
            sb.append(']');
        } else if (o instanceof Number || o instanceof Boolean) {
            sb.append(o);
        } else {
            sb.append('"');
            for (char c : o.toString().toCharArray()) {
                switch (c) {
                    case '"': sb.append("\\\""); break;
                    case '\\': sb.append("\\\\"); break;
                    case '\n': sb.append("\\n"); break;
                    case '\r': sb.append("\\r"); break;
                    case '\t': sb.append("\\t"); break;
                    default:
                        if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                        else sb.append(c);
                }
            }
            sb.append('"');
        }
    }
}
