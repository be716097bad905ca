// One member of a consumer group that runs until it is told to stop: the
// pytest suite starts several of them, watches what each one is assigned and
// consumes, runs kafka-consumer-groups while they run, then stops them.
//
// Run as a single-file source program (Java 11+):
//   java -cp "<kafka libs>/*" GroupMember.java BOOTSTRAP TOPIC GROUP CLIENT_ID [PROTOCOL] [MAX_SECONDS]
//
// PROTOCOL is group.protocol: "consumer" (KIP-848, the default here) or
// "classic". The consumer subscribe()s to TOPIC from the earliest offset, with
// auto-commit off: after every poll that returned records it commitSync()s
// and only then reports the records. It stops (commits, close()s, which leaves
// the group) when stdin reaches end-of-file or a line "stop" arrives, or after
// MAX_SECONDS (default 150; that counts as a failure).
//
// stdout carries one JSON object per line, flushed:
//   {"event":"assignment","partitions":[..],"member_id":..,"epoch":..}
//       whenever consumer.assignment() changed (checked after every poll)
//   {"event":"assigned"|"revoked"|"lost","partitions":[..]}
//       the rebalance listener's calls
//   {"event":"records","records":[[partition,offset,key,value],..]}
//       what one poll returned, after its offsets were committed
//   {"event":"closed","ok":..,"failures":[..],"consumed":..,"commits":..}
//       last, after close()
// The exit code is 0 when nothing failed, 1 otherwise, 2 on a usage error.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class GroupMember {
    public static void main(String[] args) {
        if (args.length < 4 || (args.length > 4 && !args[4].equals("consumer") && !args[4].equals("classic"))) {
            System.err.println("usage: GroupMember BOOTSTRAP TOPIC GROUP CLIENT_ID [consumer|classic] [MAX_SECONDS]");
            System.exit(2);
        }
        List<String> failures = new ArrayList<>();
        Map<String, Object> closed = new TreeMap<>();
        closed.put("event", "closed");
        try {
            run(args, closed, failures);
        } catch (Throwable t) {
            t.printStackTrace();
            closed.put("error", t.toString());
            failures.add("exception: " + t);
        }
        closed.put("failures", failures);
        closed.put("ok", failures.isEmpty());
        emit(closed);
        System.exit(failures.isEmpty() ? 0 : 1);
    }

    static void run(String[] args, Map<String, Object> closed, List<String> failures) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String group = args[2];
        String clientId = args[3];
        String protocol = args.length > 4 ? args[4] : "consumer";
        long maxMs = (args.length > 5 ? Long.parseLong(args[5]) : 150) * 1000;
        long deadline = System.currentTimeMillis() + maxMs;

        AtomicBoolean stop = new AtomicBoolean(false);
        Thread stdin = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    if (line.trim().equals("stop")) break;
                }
            } catch (Exception e) {
                // treated like end-of-file
            }
            stop.set(true);
        }, "stdin");
        stdin.setDaemon(true);
        stdin.start();

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cp.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        cp.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");

        int consumed = 0;
        int commits = 0;
        List<Integer> current = null;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                    emitPartitions("revoked", parts);
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    emitPartitions("assigned", parts);
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> parts) {
                    emitPartitions("lost", parts);
                }
            });
            while (!stop.get()) {
                if (System.currentTimeMillis() > deadline) {
                    failures.add("not stopped within " + maxMs / 1000 + "s");
                    break;
                }
                ConsumerRecords<String, String> recs = consumer.poll(Duration.ofMillis(200));
                List<Integer> now = partitions(consumer.assignment());
                if (!now.equals(current)) {
                    current = now;
                    Map<String, Object> ev = new TreeMap<>();
                    ev.put("event", "assignment");
                    ev.put("partitions", now);
                    ev.put("member_id", consumer.groupMetadata().memberId());
                    ev.put("epoch", consumer.groupMetadata().generationId());
                    emit(ev);
                }
                if (recs.isEmpty()) continue;
                consumer.commitSync(Duration.ofSeconds(30));
                commits++;
                List<Object> batch = new ArrayList<>();
                for (ConsumerRecord<String, String> r : recs) {
                    batch.add(List.of(r.partition(), r.offset(), String.valueOf(r.key()), String.valueOf(r.value())));
                    consumed++;
                }
                Map<String, Object> ev = new TreeMap<>();
                ev.put("event", "records");
                ev.put("records", batch);
                emit(ev);
            }
            consumer.commitSync(Duration.ofSeconds(30));
            closed.put("member_id", consumer.groupMetadata().memberId());
        } // close(): leaves the group
        closed.put("consumed", consumed);
        closed.put("commits", commits);
        closed.put("last_assignment", current);
    }

    static List<Integer> partitions(Collection<TopicPartition> parts) {
        List<Integer> ps = new ArrayList<>();
        for (TopicPartition tp : parts) ps.add(tp.partition());
        Collections.sort(ps);
        return ps;
    }

    static void emitPartitions(String event, Collection<TopicPartition> parts) {
        Map<String, Object> ev = new TreeMap<>();
        ev.put("event", event);
        ev.put("partitions", partitions(parts));
        emit(ev);
    }

    static synchronized void emit(Map<String, Object> ev) {
        StringBuilder sb = new StringBuilder();
        write(sb, ev);
        System.out.println(sb);
        System.out.flush();
    }

    // The JSON writer of ClientCheck.java.
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
