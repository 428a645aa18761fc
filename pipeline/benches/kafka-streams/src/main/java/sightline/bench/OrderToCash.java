package sightline.bench;

import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.state.Stores;

/**
 * The order-to-cash detection of Sightline's benchmark (topologies/order-to-cash.yaml) as a
 * Kafka Streams application: exactly-once v2, RocksDB stores, a stream-time punctuator.
 *
 * <p>The four input topics are keyed by order id and co-partitioned, so one sub-topology reads
 * them all: each task owns partition p of every input. Records are Confluent-framed Avro, decoded
 * by the source's deserializer with the writer schema from the registry; their event time
 * ({@code occurred_at}) is the record timestamp, so stream time is event time. {@link Detect}
 * applies the rules; alerts go to one topic as JSON, records that cannot be decoded to a
 * dead-letter topic.
 *
 * <pre>
 * java -jar order-to-cash-streams.jar BOOTSTRAP REGISTRY_URL APPLICATION_ID THREADS EXPECTED \
 *      ALERTS_TOPIC DLQ_TOPIC INPUT_TOPIC...
 * </pre>
 *
 * Prints {@code first} when it processes its first record and
 * {@code done records=N seconds=S cpu=C} once it has processed EXPECTED records (seconds and
 * process CPU seconds since the first record), then runs until it is stopped.
 */
public final class OrderToCash {
  static final AtomicLong PROCESSED = new AtomicLong();

  /**
   * Changelog records carry the event time of the record that wrote them, and a business
   * event can lie days ahead of the broker's clock (a shipment dated when it is planned): the
   * broker's default (one hour) would reject them.
   */
  static final Map<String, String> FUTURE_TIMESTAMPS =
      Map.of("message.timestamp.after.max.ms", Long.toString(Long.MAX_VALUE));

  public static void main(String[] args) throws Exception {
    if (args.length < 8) {
      System.err.println(
          "usage: BOOTSTRAP REGISTRY_URL APPLICATION_ID THREADS EXPECTED ALERTS_TOPIC DLQ_TOPIC INPUT_TOPIC...");
      System.exit(2);
    }
    String bootstrap = args[0];
    String registry = args[1];
    String appId = args[2];
    int threads = Integer.parseInt(args[3]);
    long expected = Long.parseLong(args[4]);
    String alerts = args[5];
    String dlq = args[6];
    List<String> inputs = List.of(args).subList(7, args.length);

    Registry schemas = new Registry(registry);
    Topology topology = new Topology();
    topology.addSource(
        org.apache.kafka.streams.AutoOffsetReset.earliest(),
        "inputs",
        new EventTime(),
        Serdes.String().deserializer(),
        new EventDeserializer(schemas),
        inputs.toArray(new String[0]));
    topology.addProcessor("detect", Detect::new, "inputs");
    topology.addStateStore(
        Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(Detect.INSTANCES), Serdes.String(), Serdes.ByteArray())
            .withCachingEnabled()
            .withLoggingEnabled(FUTURE_TIMESTAMPS),
        "detect");
    topology.addStateStore(
        Stores.keyValueStoreBuilder(
                Stores.persistentKeyValueStore(Detect.DEADLINES), Serdes.String(), Serdes.ByteArray())
            .withCachingEnabled()
            .withLoggingEnabled(FUTURE_TIMESTAMPS),
        "detect");
    topology.addSink(
        Detect.ALERTS, alerts, Serdes.String().serializer(), Serdes.String().serializer(), "detect");
    topology.addSink(
        Detect.DEAD_LETTERS, dlq, Serdes.String().serializer(), Serdes.ByteArray().serializer(), "detect");

    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    p.put(StreamsConfig.STATE_DIR_CONFIG, System.getProperty("java.io.tmpdir") + "/" + appId);
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

    KafkaStreams streams = new KafkaStreams(topology, p);
    CountDownLatch stop = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  streams.close();
                  stop.countDown();
                }));
    streams.setUncaughtExceptionHandler(
        e -> {
          e.printStackTrace();
          return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
              .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    streams.start();

    // Progress, from the first record processed to the last expected one.
    var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    while (PROCESSED.get() == 0) {
      failed(streams);
      Thread.sleep(5);
    }
    long t0 = System.nanoTime();
    long cpu0 = os.getProcessCpuTime();
    System.out.println("first");
    System.out.flush();
    while (PROCESSED.get() < expected) {
      failed(streams);
      Thread.sleep(5);
    }
    System.out.printf(
        "done records=%d seconds=%.3f cpu=%.3f%n",
        PROCESSED.get(), (System.nanoTime() - t0) / 1e9, (os.getProcessCpuTime() - cpu0) / 1e9);
    System.out.flush();
    stop.await();
  }

  /** Exits when the application has stopped by itself (its error is in the log). */
  private static void failed(KafkaStreams streams) {
    KafkaStreams.State s = streams.state();
    if (s == KafkaStreams.State.ERROR || s == KafkaStreams.State.NOT_RUNNING) {
      System.out.println("failed state=" + s);
      System.out.flush();
      Runtime.getRuntime().halt(1);
    }
  }
}
