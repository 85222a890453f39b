// The few Kafka operations the local real runtime needs, on the broker's
// own client library (kafka-clients, already on the broker's class path),
// run as a single-file program: `java -cp '<libs>/*' KafkaTool.java <command>`.
//
//   topics <bootstrap> <name>:<partitions>[:<retention ms>] ...
//       creates each topic unless it exists (re-running is harmless)
//   lag <bootstrap>
//       committed offset, end offset and lag per consumer group, topic and
//       partition, as JSON
//   lag-every <bootstrap> <millis>
//       the same, one line every <millis> until stdout is closed
//   groups <bootstrap>
//       each consumer group's state, members and assigned partitions, as JSON
//   dead-letters <bootstrap> [limit]
//       the records of every *-dlq topic (newest `limit` per topic), as JSON
//   replay <bootstrap> <topic>-dlq [event id ...]
//       republishes the dead letters (all, or those whose CloudEvent id is
//       given) to <topic>, with their key, headers and value unchanged, once
//       per event id (each consumer that gave up on an event dead-lettered
//       its own copy); every consumer deduplicates on the id, so replaying
//       twice is harmless
//
// Output is JSON on stdout so `just lag` / `just dlq` and tests can read it.

import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class KafkaTool {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: KafkaTool topics|lag|dead-letters <bootstrap> [...]");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        try (Admin admin = Admin.create(props)) {
            switch (args[0]) {
                case "topics" -> createTopics(admin, Arrays.copyOfRange(args, 2, args.length));
                case "lag" -> System.out.println(lag(admin));
                case "lag-every" -> lagEvery(admin, Long.parseLong(args[2]));
                case "groups" -> System.out.println(groups(admin));
                case "replay" -> System.out.println(replay(args[1], args[2],
                        Set.of(Arrays.copyOfRange(args, 3, args.length))));
                case "dead-letters" -> System.out.println(deadLetters(admin, args[1],
                        args.length > 2 ? Integer.parseInt(args[2]) : 100));
                default -> {
                    System.err.println("unknown command " + args[0]);
                    System.exit(2);
                }
            }
        }
    }

    static void createTopics(Admin admin, String[] specs) throws Exception {
        Set<String> existing = admin.listTopics().names().get();
        List<NewTopic> wanted = new ArrayList<>();
        for (String spec : specs) {
            String[] parts = spec.split(":");
            if (existing.contains(parts[0])) continue;
            NewTopic topic = new NewTopic(parts[0], Integer.parseInt(parts[1]), (short) 1);
            if (parts.length > 2) topic.configs(Map.of("retention.ms", parts[2]));
            wanted.add(topic);
        }
        for (Map.Entry<String, org.apache.kafka.common.KafkaFuture<Void>> created :
                admin.createTopics(wanted).values().entrySet()) {
            try {
                created.getValue().get();
                System.err.println("created topic " + created.getKey());
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) throw e;
            }
        }
    }

    static String lag(Admin admin) throws Exception {
        List<String> groups = admin.listGroups().all().get().stream()
                .map(GroupListing::groupId).sorted().collect(Collectors.toList());
        StringBuilder out = new StringBuilder("{\"groups\":[");
        long total = 0;
        boolean firstGroup = true;
        for (String group : groups) {
            Map<TopicPartition, org.apache.kafka.clients.consumer.OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            committed.keySet().forEach(tp -> latest.put(tp, OffsetSpec.latest()));
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> ends = admin.listOffsets(latest).all().get();
            if (!firstGroup) out.append(',');
            firstGroup = false;
            out.append("{\"group\":").append(quote(group)).append(",\"partitions\":[");
            long groupLag = 0;
            List<TopicPartition> sorted = new ArrayList<>(committed.keySet());
            sorted.sort(Comparator.comparing(TopicPartition::topic).thenComparing(TopicPartition::partition));
            for (int i = 0; i < sorted.size(); i++) {
                TopicPartition tp = sorted.get(i);
                long at = committed.get(tp) == null ? 0 : committed.get(tp).offset();
                long end = ends.get(tp).offset();
                long lag = Math.max(0, end - at);
                groupLag += lag;
                if (i > 0) out.append(',');
                out.append(String.format("{\"topic\":%s,\"partition\":%d,\"committed\":%d,\"end\":%d,\"lag\":%d}",
                        quote(tp.topic()), tp.partition(), at, end, lag));
            }
            total += groupLag;
            out.append("],\"lag\":").append(groupLag).append('}');
        }
        return out.append("],\"total\":").append(total).append('}').toString();
    }

    // One admin client for a whole phase: a JVM per sample would itself take
    // a core. Stops when the reader hangs up.
    static void lagEvery(Admin admin, long millis) throws Exception {
        while (!System.out.checkError()) {
            System.out.println(lag(admin));
            System.out.flush();
            Thread.sleep(millis);
        }
    }

    static String groups(Admin admin) throws Exception {
        List<String> ids = admin.listGroups().all().get().stream()
                .map(GroupListing::groupId).sorted().collect(Collectors.toList());
        StringBuilder out = new StringBuilder("[");
        Map<String, ConsumerGroupDescription> described = admin.describeConsumerGroups(ids).all().get();
        for (int i = 0; i < ids.size(); i++) {
            ConsumerGroupDescription group = described.get(ids.get(i));
            int partitions = group.members().stream().mapToInt(m -> m.assignment().topicPartitions().size()).sum();
            if (i > 0) out.append(',');
            out.append(String.format("{\"group\":%s,\"state\":%s,\"members\":%d,\"partitions\":%d}",
                    quote(ids.get(i)), quote(group.groupState().toString()), group.members().size(), partitions));
        }
        return out.append(']').toString();
    }

    static String deadLetters(Admin admin, String bootstrap, int limit) throws Exception {
        List<String> topics = admin.listTopics().names().get().stream()
                .filter(name -> name.endsWith("-dlq")).sorted().collect(Collectors.toList());
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        StringBuilder out = new StringBuilder("{\"topics\":[");
        long total = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            for (int t = 0; t < topics.size(); t++) {
                String topic = topics.get(t);
                List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
                        .map(info -> new TopicPartition(topic, info.partition())).collect(Collectors.toList());
                consumer.assign(partitions);
                Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
                Map<TopicPartition, Long> starts = consumer.beginningOffsets(partitions);
                long count = 0;
                for (TopicPartition tp : partitions) {
                    count += ends.get(tp) - starts.get(tp);
                    consumer.seek(tp, Math.max(starts.get(tp), ends.get(tp) - limit));
                }
                total += count;
                List<String> records = new ArrayList<>();
                long wanted = partitions.stream().mapToLong(tp -> Math.min(limit, ends.get(tp) - starts.get(tp))).sum();
                long deadline = System.currentTimeMillis() + 10_000;
                while (records.size() < wanted && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                        StringBuilder headers = new StringBuilder("{");
                        for (Header header : record.headers()) {
                            if (headers.length() > 1) headers.append(',');
                            headers.append(quote(header.key())).append(':')
                                    .append(quote(header.value() == null ? "" : new String(header.value())));
                        }
                        headers.append('}');
                        records.add(String.format("{\"partition\":%d,\"offset\":%d,\"key\":%s,\"headers\":%s,\"value\":%s}",
                                record.partition(), record.offset(),
                                quote(record.key() == null ? "" : new String(record.key())), headers,
                                quote(record.value() == null ? "" : new String(record.value()))));
                    }
                }
                if (t > 0) out.append(',');
                out.append("{\"topic\":").append(quote(topic)).append(",\"count\":").append(count)
                        .append(",\"records\":[").append(String.join(",", records)).append("]}");
            }
        }
        return out.append("],\"total\":").append(total).append('}').toString();
    }

    static String replay(String bootstrap, String deadLetterTopic, Set<String> ids) throws Exception {
        if (!deadLetterTopic.endsWith("-dlq")) throw new IllegalArgumentException("not a dead-letter topic: " + deadLetterTopic);
        String topic = deadLetterTopic.substring(0, deadLetterTopic.length() - 4);
        Properties consumerProps = new Properties();
        consumerProps.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        consumerProps.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        consumerProps.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        consumerProps.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        Properties producerProps = new Properties();
        producerProps.put(org.apache.kafka.clients.producer.ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        producerProps.put(org.apache.kafka.clients.producer.ProducerConfig.ACKS_CONFIG, "all");
        producerProps.put(org.apache.kafka.clients.producer.ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG,
                org.apache.kafka.common.serialization.ByteArraySerializer.class.getName());
        producerProps.put(org.apache.kafka.clients.producer.ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG,
                org.apache.kafka.common.serialization.ByteArraySerializer.class.getName());
        int replayed = 0;
        Set<String> done = new HashSet<>();
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProps);
             org.apache.kafka.clients.producer.KafkaProducer<byte[], byte[]> producer =
                     new org.apache.kafka.clients.producer.KafkaProducer<>(producerProps)) {
            List<TopicPartition> partitions = consumer.partitionsFor(deadLetterTopic).stream()
                    .map(info -> new TopicPartition(deadLetterTopic, info.partition())).collect(Collectors.toList());
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            long deadline = System.currentTimeMillis() + 15_000;
            while (System.currentTimeMillis() < deadline
                    && partitions.stream().anyMatch(tp -> consumer.position(tp) < ends.get(tp))) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    if (record.offset() >= ends.get(new TopicPartition(deadLetterTopic, record.partition()))) continue;
                    String id;
                    try {
                        id = json.readTree(record.value()).path("id").asText("");
                    } catch (Exception notCloudEvent) {
                        id = "";
                    }
                    if (!ids.isEmpty() && !ids.contains(id)) continue;
                    if (!id.isEmpty() && !done.add(id)) continue;
                    org.apache.kafka.clients.producer.ProducerRecord<byte[], byte[]> again =
                            new org.apache.kafka.clients.producer.ProducerRecord<>(topic, null, record.key(), record.value(), record.headers());
                    producer.send(again).get();
                    replayed++;
                }
            }
        }
        return String.format("{\"topic\":%s,\"replayed\":%d}", quote(topic), replayed);
    }

    static String quote(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
                }
            }
        }
        return out.append('"').toString();
    }
}
