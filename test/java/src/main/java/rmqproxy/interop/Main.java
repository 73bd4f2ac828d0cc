package rmqproxy.interop;

import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientException;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageBuilder;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.apis.producer.Transaction;
import org.apache.rocketmq.client.apis.producer.TransactionResolution;

/**
 * The Java interop program: drives the official RocketMQ 5 Java client
 * (org.apache.rocketmq:rocketmq-client-java) through one scenario against
 * an endpoint and prints one JSON object per line for each event. Usage:
 *
 * <pre>
 * java -cp target/classes:target/lib/* rmqproxy.interop.Main SCENARIO
 *     --endpoint 127.0.0.1:8081 --topic T --group G [--count N]
 *     [--groups K] [--delay-ms D] [--consumer simple|push]
 *     [--linger-ms L] [--timeout-ms T] [--invisible-ms I]
 * </pre>
 *
 * Scenarios: normal, fifo, fiforun, delay (with --recall 1, one more delay
 * message is sent first and recalled), transaction, limits, filter,
 * invisible, verify (with --admin HOST:PORT). Simple consumers receive with an invisible duration
 * of I ms (default 30000) and ack each message. The client runs with its
 * default settings (TLS on, certificate not verified). Errors go to stderr
 * and end the program with a non-zero exit code.
 */
public final class Main {
    private static final PrintStream OUT = System.out;
    private static final Object OUT_LOCK = new Object();

    private final Map<String, String> opts;
    private final String scenario;
    private final String endpoint;
    private final String topic;
    private final String group;
    private final int count;
    private final long lingerMillis;
    private final long deadline;
    // The invisible duration of the simple consumers' receives of messages they ack.
    private final Duration invisible;
    private final ClientServiceProvider provider = ClientServiceProvider.loadService();
    private final ClientConfiguration config;

    // Distinct message ids received so far, and how many of them count toward the goal.
    private final Set<String> received = Collections.synchronizedSet(new HashSet<>());

    private Main(String scenario, Map<String, String> opts) {
        this.scenario = scenario;
        this.opts = opts;
        this.endpoint = required("endpoint");
        this.topic = required("topic");
        this.group = required("group");
        this.count = Integer.parseInt(opts.getOrDefault("count", "20"));
        this.lingerMillis = Long.parseLong(opts.getOrDefault("linger-ms", "1500"));
        this.deadline = System.currentTimeMillis() + Long.parseLong(opts.getOrDefault("timeout-ms", "90000"));
        this.invisible = Duration.ofMillis(Long.parseLong(opts.getOrDefault("invisible-ms", "30000")));
        // Default settings: the builder's defaults (enableSsl true) stay as they are.
        this.config = ClientConfiguration.newBuilder().setEndpoints(endpoint).build();
    }

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: Main normal|fifo|delay|transaction --endpoint HOST:PORT --topic T --group G [...]");
            System.exit(2);
        }
        Map<String, String> opts = new HashMap<>();
        for (int i = 1; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) {
                System.err.println("unexpected argument " + a);
                System.exit(2);
            }
            String key = a.substring(2);
            String value;
            int eq = key.indexOf('=');
            if (eq >= 0) {
                value = key.substring(eq + 1);
                key = key.substring(0, eq);
            } else if (i + 1 < args.length) {
                value = args[++i];
            } else {
                System.err.println("missing value for " + a);
                System.exit(2);
                return;
            }
            opts.put(key, value);
        }
        int code = 0;
        try {
            Main m = new Main(args[0], opts);
            m.run();
            emit(event("done"));
        } catch (Throwable t) {
            System.err.println("java interop " + args[0] + " failed: " + t);
            t.printStackTrace(System.err);
            code = 1;
        }
        System.out.flush();
        // The client keeps non-daemon threads (schedulers, gRPC) after close; end here.
        System.exit(code);
    }

    private String required(String key) {
        String v = opts.get(key);
        if (v == null || v.isEmpty()) {
            throw new IllegalArgumentException("--" + key + " is required");
        }
        return v;
    }

    private void run() throws Exception {
        switch (scenario) {
            case "normal":
                normal();
                break;
            case "fifo":
                fifo();
                break;
            case "delay":
                delay();
                break;
            case "transaction":
                transaction();
                break;
            case "limits":
                limits();
                break;
            case "fiforun":
                fifoRun();
                break;
            case "verify":
                verify();
                break;
            case "filter":
                filter();
                break;
            case "invisible":
                invisible();
                break;
            default:
                throw new IllegalArgumentException("unknown scenario " + scenario);
        }
    }

    // ---- scenarios ----

    /**
     * verify: a push consumer consumes two messages, then asks rmqproxy's
     * admin API (--admin) to have itself verify each of them (rmqproxy
     * client verify): the proxy sends a VerifyMessageCommand on the
     * consumer's Telemetry stream, the client runs its listener on the
     * message again and answers. The listener accepts a message the first
     * time and, the second time, fails the one whose verdict property says
     * so. Events: sent, received (twice per message), verify (the admin
     * API's HTTP status and answer).
     */
    private void verify() throws Exception {
        String admin = required("admin");
        Map<String, Integer> seen = new HashMap<>();
        Object lock = new Object();
        PushConsumer c = provider.newPushConsumerBuilder().setClientConfiguration(config).setConsumerGroup(group)
            .setSubscriptionExpressions(subscription()).setMessageListener(v -> {
                onReceived(v, "push");
                int n;
                synchronized (lock) {
                    n = seen.merge(v.getMessageId().toString(), 1, Integer::sum);
                    lock.notifyAll();
                }
                boolean fail = n > 1 && "fail".equals(v.getProperties().get("verdict"));
                return fail ? ConsumeResult.FAILURE : ConsumeResult.SUCCESS;
            }).build();
        try {
            List<String> ids = new ArrayList<>();
            try (Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build()) {
                for (String verdict : List.of("ok", "fail")) {
                    String body = "verify-java-" + verdict;
                    SendReceipt r = producer.send(provider.newMessageBuilder().setTopic(topic).setBody(bytes(body))
                        .setTag("verify").addProperty("verdict", verdict).build());
                    Map<String, Object> e = event("sent");
                    e.put("id", r.getMessageId().toString());
                    e.put("body", body);
                    e.put("props", new TreeMap<>(Map.of("verdict", verdict)));
                    emit(e);
                    ids.add(r.getMessageId().toString());
                }
            }
            synchronized (lock) {
                while (!seen.keySet().containsAll(ids)) {
                    long left = deadline - System.currentTimeMillis();
                    if (left <= 0) {
                        throw new IllegalStateException("received " + seen.keySet() + " of " + ids + " before the timeout");
                    }
                    lock.wait(left);
                }
            }
            java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();
            String self = ownClientId(http, admin);
            for (String id : ids) {
                String body = "{\"topic\":\"" + topic + "\",\"messageId\":\"" + id + "\"}";
                java.net.http.HttpResponse<String> resp = http.send(java.net.http.HttpRequest.newBuilder(
                        java.net.URI.create("http://" + admin + "/v1/clients/" + java.net.URLEncoder.encode(self, StandardCharsets.UTF_8).replace("+", "%20") + "/verify"))
                    .header("Content-Type", "application/json").POST(java.net.http.HttpRequest.BodyPublishers.ofString(body)).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
                Map<String, Object> e = event("verify");
                e.put("id", id);
                e.put("client", self);
                e.put("status", resp.statusCode());
                e.put("answer", resp.body());
                emit(e);
            }
        } finally {
            c.close();
        }
    }

    /** Finds this program's push consumer in the admin API's client list. */
    private String ownClientId(java.net.http.HttpClient http, String admin) throws Exception {
        java.util.regex.Pattern p = java.util.regex.Pattern.compile(
            "\"clientId\": \"([^\"]+)\",\\s*\"kind\": \"consumer\",\\s*\"clientType\": \"PUSH_CONSUMER\",\\s*\"language\": \"JAVA\"");
        while (true) {
            String list = http.send(java.net.http.HttpRequest.newBuilder(
                    java.net.URI.create("http://" + admin + "/v1/clients?group=" + java.net.URLEncoder.encode(group, StandardCharsets.UTF_8))).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString()).body();
            java.util.regex.Matcher m = p.matcher(list);
            if (m.find()) {
                return m.group(1);
            }
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("the push consumer is not in the admin API's client list: " + list);
            }
            Thread.sleep(100);
        }
    }

    private void normal() throws Exception {
        Consumer consumer = startConsumer();
        try (Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build()) {
            for (int i = 0; i < count; i++) {
                String tag = i % 2 == 0 ? "TagA" : "TagB";
                String body = "normal-java-" + i;
                MessageBuilder b = provider.newMessageBuilder().setTopic(topic).setBody(bytes(body)).setTag(tag)
                    .setKeys("k-" + i, "order-" + i / 10)
                    .addProperty("seq", Integer.toString(i)).addProperty("lang", "java")
                    .addProperty("unicode", "ünï-" + i);
                SendReceipt r = producer.send(b.build());
                Map<String, Object> e = event("sent");
                e.put("id", r.getMessageId().toString());
                e.put("seq", i);
                e.put("tag", tag);
                e.put("keys", List.of("k-" + i, "order-" + i / 10));
                e.put("body", body);
                e.put("props", new TreeMap<>(Map.of("seq", Integer.toString(i), "lang", "java", "unicode", "ünï-" + i)));
                emit(e);
            }
        }
        consumer.awaitAndClose(count);
    }

    private void fifo() throws Exception {
        int groups = Integer.parseInt(opts.getOrDefault("groups", "3"));
        Consumer consumer = startConsumer();
        try (Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build()) {
            for (int i = 0; i < count; i++) {
                String mg = "mg-" + i % groups;
                int seq = i / groups;
                String body = "fifo-java-" + mg + "-" + seq;
                Message m = provider.newMessageBuilder().setTopic(topic).setBody(bytes(body)).setTag("fifo")
                    .setKeys("k-" + i).setMessageGroup(mg).addProperty("seq", Integer.toString(seq)).build();
                SendReceipt r = producer.send(m);
                Map<String, Object> e = event("sent");
                e.put("id", r.getMessageId().toString());
                e.put("group", mg);
                e.put("seq", seq);
                e.put("body", body);
                emit(e);
            }
        }
        consumer.awaitAndClose(count);
    }

    private void delay() throws Exception {
        long delayMillis = Long.parseLong(opts.getOrDefault("delay-ms", "3000"));
        Consumer consumer = startConsumer();
        try (Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build()) {
            if ("1".equals(opts.get("recall"))) {
                // Due before the others: had the recall not taken, it would
                // arrive before them.
                String body = "recall-java";
                SendReceipt r = producer.send(provider.newMessageBuilder().setTopic(topic).setBody(bytes(body)).setTag("delay")
                    .setKeys("k-recall").setDeliveryTimestamp(System.currentTimeMillis() + delayMillis).build());
                String recalled = producer.recallMessage(topic, r.getRecallHandle()).getMessageId().toString();
                Map<String, Object> e = event("recalled");
                e.put("id", r.getMessageId().toString());
                e.put("answer", recalled);
                e.put("body", body);
                emit(e);
            }
            for (int i = 0; i < count; i++) {
                String body = "delay-java-" + i;
                long at = System.currentTimeMillis() + delayMillis;
                Message m = provider.newMessageBuilder().setTopic(topic).setBody(bytes(body)).setTag("delay")
                    .setKeys("k-" + i).setDeliveryTimestamp(at).addProperty("seq", Integer.toString(i)).build();
                SendReceipt r = producer.send(m);
                Map<String, Object> e = event("sent");
                e.put("id", r.getMessageId().toString());
                e.put("seq", i);
                e.put("deliver_at", at);
                e.put("body", body);
                emit(e);
            }
        }
        consumer.awaitAndClose(count);
    }

    /**
     * Three half messages: "commit" is committed, "rollback" rolled back,
     * "unknown" left open so that the broker checks it back; the checker
     * answers COMMIT for it (and ROLLBACK for anything else it is asked).
     */
    private void transaction() throws Exception {
        Consumer consumer = startConsumer();
        Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic)
            .setTransactionChecker(view -> {
                String outcome = view.getProperties().getOrDefault("outcome", "");
                TransactionResolution res = "unknown".equals(outcome) ? TransactionResolution.COMMIT
                    : TransactionResolution.ROLLBACK;
                Map<String, Object> e = event("checked");
                e.put("id", view.getMessageId().toString());
                e.put("outcome", outcome);
                e.put("resolution", res.name());
                emit(e);
                return res;
            }).build();
        try {
            for (String outcome : List.of("commit", "rollback", "unknown")) {
                String body = "tx-java-" + outcome;
                Message m = provider.newMessageBuilder().setTopic(topic).setBody(bytes(body)).setTag("tx")
                    .setKeys("k-" + outcome).addProperty("outcome", outcome).build();
                Transaction tx = producer.beginTransaction();
                SendReceipt r = producer.send(m, tx);
                Map<String, Object> e = event("sent");
                e.put("id", r.getMessageId().toString());
                e.put("outcome", outcome);
                e.put("body", body);
                emit(e);
                if (outcome.equals("commit")) {
                    tx.commit();
                } else if (outcome.equals("rollback")) {
                    tx.rollback();
                }
                Map<String, Object> d = event("resolved");
                d.put("id", r.getMessageId().toString());
                d.put("outcome", outcome);
                emit(d);
            }
            // The producer stays up (it answers the check-back) until both
            // the committed and the checked-back message have arrived.
            consumer.awaitAndClose(2);
        } finally {
            producer.close();
        }
    }

    /**
     * filter: six messages, message i tagged TagA, TagB or TagC (i % 3) with
     * the properties color (red for an even i, else blue) and n (i); one
     * simple consumer (group G-tag) subscribes with the tag expression
     * "TagA||TagC", another (group G-sql) with the SQL92 expression
     * "color = 'red' AND n >= 2". Each receives until it has --tag-want and
     * --sql-want messages, then both linger. "received" events name the
     * consumer (tag or sql).
     */
    private void filter() throws Exception {
        int tagWant = Integer.parseInt(required("tag-want"));
        int sqlWant = Integer.parseInt(required("sql-want"));
        Map<String, Set<String>> got = new HashMap<>();
        Map<String, SimpleConsumer> consumers = new LinkedHashMap<>();
        consumers.put("tag", provider.newSimpleConsumerBuilder().setClientConfiguration(config).setConsumerGroup(group + "-tag")
            .setSubscriptionExpressions(Map.of(topic, new FilterExpression("TagA||TagC", FilterExpressionType.TAG)))
            .setAwaitDuration(Duration.ofSeconds(1)).build());
        consumers.put("sql", provider.newSimpleConsumerBuilder().setClientConfiguration(config).setConsumerGroup(group + "-sql")
            .setSubscriptionExpressions(Map.of(topic, new FilterExpression("color = 'red' AND n >= 2", FilterExpressionType.SQL92)))
            .setAwaitDuration(Duration.ofSeconds(1)).build());
        try {
            try (Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build()) {
                for (int i = 0; i < 6; i++) {
                    String tag = "Tag" + "ABC".charAt(i % 3);
                    String color = i % 2 == 0 ? "red" : "blue";
                    String body = "filter-java-" + i;
                    Map<String, String> props = Map.of("color", color, "n", Integer.toString(i), "seq", Integer.toString(i));
                    MessageBuilder b = provider.newMessageBuilder().setTopic(topic).setBody(bytes(body)).setTag(tag).setKeys("k-" + i);
                    props.forEach(b::addProperty);
                    SendReceipt r = producer.send(b.build());
                    Map<String, Object> e = event("sent");
                    e.put("id", r.getMessageId().toString());
                    e.put("seq", i);
                    e.put("tag", tag);
                    e.put("body", body);
                    e.put("props", new TreeMap<>(props));
                    emit(e);
                }
            }
            long lingerUntil = Long.MAX_VALUE;
            while (System.currentTimeMillis() < lingerUntil) {
                for (Map.Entry<String, SimpleConsumer> c : consumers.entrySet()) {
                    for (MessageView v : c.getValue().receive(16, invisible)) {
                        onReceived(v, c.getKey());
                        got.computeIfAbsent(c.getKey(), k -> new HashSet<>()).add(v.getMessageId().toString());
                        ack(c.getValue(), v);
                    }
                }
                int tagGot = got.getOrDefault("tag", Set.of()).size();
                int sqlGot = got.getOrDefault("sql", Set.of()).size();
                if (lingerUntil == Long.MAX_VALUE) {
                    if (tagGot >= tagWant && sqlGot >= sqlWant) {
                        lingerUntil = System.currentTimeMillis() + lingerMillis;
                    } else if (System.currentTimeMillis() > deadline) {
                        throw new IllegalStateException("received " + tagGot + " of " + tagWant + " (tag) and " + sqlGot
                            + " of " + sqlWant + " (sql) before the timeout");
                    }
                }
            }
        } finally {
            for (SimpleConsumer c : consumers.values()) {
                c.close();
            }
        }
    }

    /**
     * invisible: two messages, "extend" and "shorten". A simple consumer
     * receives them; it changes the invisible duration of "extend" to twice
     * its own and then acks it (with the receipt handle the change
     * returned); it changes that of "shorten" to 1 s ("changing" event
     * before the call, "changed" after) and does not ack it, receives it
     * again (delivery attempt 2) and acks it then.
     */
    private void invisible() throws Exception {
        try (SimpleConsumer c = provider.newSimpleConsumerBuilder().setClientConfiguration(config).setConsumerGroup(group)
            .setSubscriptionExpressions(subscription()).setAwaitDuration(Duration.ofSeconds(2)).build()) {
            try (Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build()) {
                for (String kase : List.of("extend", "shorten")) {
                    String body = "invisible-java-" + kase;
                    SendReceipt r = producer.send(provider.newMessageBuilder().setTopic(topic).setBody(bytes(body)).setTag("inv")
                        .setKeys("k-" + kase).addProperty("case", kase).build());
                    Map<String, Object> e = event("sent");
                    e.put("id", r.getMessageId().toString());
                    e.put("case", kase);
                    e.put("body", body);
                    emit(e);
                }
            }
            Set<String> done = new HashSet<>();
            long lingerUntil = Long.MAX_VALUE;
            while (System.currentTimeMillis() < lingerUntil) {
                if (lingerUntil == Long.MAX_VALUE && System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("settled " + done + " of extend and shorten before the timeout");
                }
                for (MessageView v : c.receive(16, invisible)) {
                    onReceived(v, "simple");
                    String kase = v.getProperties().getOrDefault("case", "");
                    if (kase.equals("shorten") && v.getDeliveryAttempt() == 1) {
                        Map<String, Object> e = event("changing");
                        e.put("id", v.getMessageId().toString());
                        e.put("case", kase);
                        e.put("ts", System.currentTimeMillis());
                        emit(e);
                        c.changeInvisibleDuration(v, Duration.ofSeconds(1));
                        e = event("changed");
                        e.put("id", v.getMessageId().toString());
                        e.put("case", kase);
                        emit(e);
                        continue;
                    }
                    if (kase.equals("extend")) {
                        c.changeInvisibleDuration(v, invisible.multipliedBy(2));
                        Map<String, Object> e = event("changed");
                        e.put("id", v.getMessageId().toString());
                        e.put("case", kase);
                        emit(e);
                    }
                    ack(c, v);
                    done.add(kase);
                }
                if (lingerUntil == Long.MAX_VALUE && done.size() == 2) {
                    lingerUntil = System.currentTimeMillis() + lingerMillis;
                }
            }
        }
    }

    /**
     * Limits as a client sees them: receives whose invisible duration is
     * below the minimum or above the maximum are refused (one "rejected"
     * event each, with the exception's message), and a consumer subscribed
     * with a 10 KiB tag expression receives the one message ("hit") that
     * matches it and not the other ("miss").
     */
    private void limits() throws Exception {
        try (SimpleConsumer c = provider.newSimpleConsumerBuilder().setClientConfiguration(config).setConsumerGroup(group)
            .setSubscriptionExpressions(subscription()).setAwaitDuration(Duration.ofSeconds(2)).build()) {
            Map<String, Duration> cases = new LinkedHashMap<>();
            cases.put("invisible-too-small", Duration.ofMillis(100));
            cases.put("invisible-too-large", Duration.ofHours(13));
            for (Map.Entry<String, Duration> k : cases.entrySet()) {
                Map<String, Object> e;
                try {
                    c.receive(1, k.getValue());
                    e = event("accepted");
                } catch (ClientException ex) {
                    e = event("rejected");
                    e.put("message", ex.getMessage());
                }
                e.put("case", k.getKey());
                emit(e);
            }
        }
        StringBuilder tags = new StringBuilder();
        for (int i = 0; tags.length() < 10 * 1024; i++) {
            tags.append(String.format("absent-tag-%05d||", i));
        }
        tags.append("hit");
        try (SimpleConsumer c = provider.newSimpleConsumerBuilder().setClientConfiguration(config).setConsumerGroup(group + "-long")
            .setSubscriptionExpressions(Map.of(topic, new FilterExpression(tags.toString(), FilterExpressionType.TAG)))
            .setAwaitDuration(Duration.ofSeconds(2)).build()) {
            try (Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build()) {
                for (String tag : List.of("miss", "hit")) {
                    String body = "limits-java-" + tag;
                    SendReceipt r = producer.send(provider.newMessageBuilder().setTopic(topic).setBody(bytes(body)).setTag(tag).build());
                    Map<String, Object> e = event("sent");
                    e.put("id", r.getMessageId().toString());
                    e.put("tag", tag);
                    e.put("body", body);
                    emit(e);
                }
            }
            long lingerUntil = Long.MAX_VALUE;
            while (System.currentTimeMillis() < lingerUntil) {
                if (received.isEmpty() && System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("the consumer with a 10 KiB tag expression received nothing before the timeout");
                }
                for (MessageView v : c.receive(16, invisible)) {
                    onReceived(v, "simple");
                    c.ack(v);
                }
                if (!received.isEmpty() && lingerUntil == Long.MAX_VALUE) {
                    lingerUntil = System.currentTimeMillis() + lingerMillis;
                }
            }
        }
    }

    /**
     * One message group of six messages on a FIFO topic; a simple consumer
     * receives with a batch size of 3 (the Apache proxy hands out a run of
     * 3 consecutive messages), acks the later two but not the first, and
     * receives again: the run comes again after its invisible time. Then it
     * acks the run and receives the rest. Emits "received" for every
     * message and "round" after each receive that got messages.
     */
    private void fifoRun() throws Exception {
        try (Producer producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build()) {
            for (int seq = 0; seq < 6; seq++) {
                String body = "fiforun-java-" + seq;
                SendReceipt r = producer.send(provider.newMessageBuilder().setTopic(topic).setBody(bytes(body)).setTag("fifo")
                    .setMessageGroup("mg").addProperty("seq", Integer.toString(seq)).build());
                Map<String, Object> e = event("sent");
                e.put("id", r.getMessageId().toString());
                e.put("seq", seq);
                emit(e);
            }
        }
        try (SimpleConsumer c = provider.newSimpleConsumerBuilder().setClientConfiguration(config).setConsumerGroup(group)
            .setSubscriptionExpressions(subscription()).setAwaitDuration(Duration.ofSeconds(2)).build()) {
            List<MessageView> run = receiveRound(c, Duration.ofSeconds(3), 1);
            for (MessageView v : run.subList(1, run.size())) {
                ack(c, v);
            }
            for (int round = 2; round <= 3; round++) {
                for (MessageView v : receiveRound(c, invisible, round)) {
                    ack(c, v);
                }
            }
        }
    }

    /** Receives (batch size 3) until messages come; emits them and the round. */
    private List<MessageView> receiveRound(SimpleConsumer c, Duration invisible, int round) throws Exception {
        while (true) {
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("round " + round + ": nothing received before the timeout");
            }
            List<MessageView> got = c.receive(3, invisible);
            if (got.isEmpty()) {
                continue;
            }
            for (MessageView v : got) {
                onReceived(v, "simple");
            }
            Map<String, Object> e = event("round");
            e.put("seq", round);
            e.put("case", Integer.toString(got.size()));
            emit(e);
            return got;
        }
    }

    private void ack(SimpleConsumer c, MessageView v) throws ClientException {
        c.ack(v);
        Map<String, Object> e = event("acked");
        e.put("id", v.getMessageId().toString());
        emit(e);
    }

    // ---- consumers ----

    private interface Consumer {
        /** Waits for want distinct messages, then lingers to catch extras, then closes. */
        void awaitAndClose(int want) throws Exception;
    }

    private Map<String, FilterExpression> subscription() {
        return Map.of(topic, new FilterExpression("*", FilterExpressionType.TAG));
    }

    private Consumer startConsumer() throws Exception {
        String kind = opts.getOrDefault("consumer", "simple");
        if (kind.equals("push")) {
            return startPush();
        }
        if (!kind.equals("simple")) {
            throw new IllegalArgumentException("unknown consumer " + kind);
        }
        SimpleConsumer c = provider.newSimpleConsumerBuilder().setClientConfiguration(config).setConsumerGroup(group)
            .setSubscriptionExpressions(subscription()).setAwaitDuration(Duration.ofSeconds(2)).build();
        // The consumer receives from now on, while the scenario sends: a
        // message reaches a consumer that is already waiting for it.
        Object lock = new Object();
        Throwable[] failure = new Throwable[1];
        boolean[] stop = new boolean[1];
        Thread loop = new Thread(() -> {
            try {
                while (true) {
                    synchronized (lock) {
                        if (stop[0]) {
                            return;
                        }
                    }
                    List<MessageView> views = c.receive(16, invisible);
                    for (MessageView v : views) {
                        onReceived(v, "simple");
                        c.ack(v);
                        Map<String, Object> e = event("acked");
                        e.put("id", v.getMessageId().toString());
                        emit(e);
                    }
                    synchronized (lock) {
                        lock.notifyAll();
                    }
                }
            } catch (Throwable t) {
                synchronized (lock) {
                    failure[0] = t;
                    lock.notifyAll();
                }
            }
        }, "simple-consumer");
        loop.start();
        return want -> {
            try {
                synchronized (lock) {
                    while (received.size() < want && failure[0] == null) {
                        long left = deadline - System.currentTimeMillis();
                        if (left <= 0) {
                            throw new IllegalStateException("received " + received.size() + " of " + want + " messages before the timeout");
                        }
                        lock.wait(left);
                    }
                }
                // Linger: a duplicate or an unexpected message would show up now.
                long until = System.currentTimeMillis() + lingerMillis;
                synchronized (lock) {
                    for (long left = lingerMillis; left > 0 && failure[0] == null; left = until - System.currentTimeMillis()) {
                        lock.wait(left);
                    }
                    stop[0] = true;
                    if (failure[0] != null) {
                        throw new IllegalStateException("simple consumer failed", failure[0]);
                    }
                }
                loop.join();
                synchronized (lock) {
                    if (failure[0] != null) {
                        throw new IllegalStateException("simple consumer failed", failure[0]);
                    }
                }
            } finally {
                synchronized (lock) {
                    stop[0] = true;
                }
                loop.join(10_000);
                c.close();
            }
        };
    }

    private Consumer startPush() throws Exception {
        Object lock = new Object();
        PushConsumer c = provider.newPushConsumerBuilder().setClientConfiguration(config).setConsumerGroup(group)
            .setSubscriptionExpressions(subscription()).setMessageListener(v -> {
                onReceived(v, "push");
                synchronized (lock) {
                    lock.notifyAll();
                }
                return ConsumeResult.SUCCESS;
            }).build();
        return want -> {
            try {
                synchronized (lock) {
                    while (received.size() < want) {
                        long left = deadline - System.currentTimeMillis();
                        if (left <= 0) {
                            throw new IllegalStateException("received " + received.size() + " of " + want + " messages before the timeout");
                        }
                        lock.wait(left);
                    }
                }
                // Linger: a duplicate or an unexpected message would show up now.
                long until = System.currentTimeMillis() + lingerMillis;
                synchronized (lock) {
                    for (long left = lingerMillis; left > 0; left = until - System.currentTimeMillis()) {
                        lock.wait(left);
                    }
                }
            } finally {
                c.close();
            }
        };
    }

    private void onReceived(MessageView v, String consumer) {
        long now = System.currentTimeMillis();
        Map<String, Object> e = event("received");
        e.put("id", v.getMessageId().toString());
        e.put("consumer", consumer);
        e.put("topic", v.getTopic());
        e.put("body", string(v.getBody()));
        e.put("tag", v.getTag().orElse(null));
        e.put("keys", new ArrayList<>(v.getKeys()));
        e.put("props", new TreeMap<>(v.getProperties()));
        e.put("group", v.getMessageGroup().orElse(null));
        String seq = v.getProperties().get("seq");
        if (seq != null) {
            e.put("seq", Integer.parseInt(seq));
        }
        e.put("attempt", v.getDeliveryAttempt());
        v.getDeliveryTimestamp().ifPresent(t -> e.put("deliver_at", t));
        e.put("born", v.getBornTimestamp());
        e.put("ts", now);
        emit(e);
        received.add(v.getMessageId().toString());
    }

    // ---- output ----

    private static Map<String, Object> event(String name) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("event", name);
        return e;
    }

    private static void emit(Map<String, Object> e) {
        StringBuilder sb = new StringBuilder();
        json(sb, e);
        synchronized (OUT_LOCK) {
            OUT.println(sb);
            OUT.flush();
        }
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String string(ByteBuffer b) {
        ByteBuffer d = b.duplicate();
        byte[] a = new byte[d.remaining()];
        d.get(a);
        return new String(a, StandardCharsets.UTF_8);
    }

    private static void json(StringBuilder sb, Object v) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof String) {
            quote(sb, (String) v);
        } else if (v instanceof Number || v instanceof Boolean) {
            sb.append(v);
        } else if (v instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> en : ((Map<?, ?>) v).entrySet()) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                quote(sb, String.valueOf(en.getKey()));
                sb.append(':');
                json(sb, en.getValue());
            }
            sb.append('}');
        } else if (v instanceof Collection) {
            sb.append('[');
            boolean first = true;
            for (Object o : (Collection<?>) v) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                json(sb, o);
            }
            sb.append(']');
        } else {
            quote(sb, v.toString());
        }
    }

    private static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"':
                    sb.append("\\\"");
                    break;
                case '\\':
                    sb.append("\\\\");
                    break;
                case '\n':
                    sb.append("\\n");
                    break;
                case '\r':
                    sb.append("\\r");
                    break;
                case '\t':
                    sb.append("\\t");
                    break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }
}
