package sightline.bench;

import java.nio.ByteBuffer;
import java.time.OffsetDateTime;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.common.serialization.Deserializer;

/**
 * Confluent-framed Avro (magic 0, schema id, datum) to an {@link Event}. It never throws: a
 * record it cannot decode becomes a poison event, which the processor dead-letters (a
 * deserialization exception handler could only log or drop it).
 */
final class EventDeserializer implements Deserializer<Event> {
  private final Registry registry;
  /** One source deserializer serves every stream thread: each reuses its own decoder. */
  private final ThreadLocal<BinaryDecoder> decoder = new ThreadLocal<>();

  EventDeserializer(Registry registry) {
    this.registry = registry;
  }

  @Override
  public Event deserialize(String topic, byte[] data) {
    if (data == null || data.length < 5 || data[0] != 0) {
      return new Event(data == null ? new byte[0] : data, "not_avro");
    }
    try {
      GenericDatumReader<GenericRecord> reader = registry.reader(ByteBuffer.wrap(data, 1, 4).getInt());
      if (reader == null) {
        return new Event(data, "unknown_schema");
      }
      BinaryDecoder d = DecoderFactory.get().binaryDecoder(data, 5, data.length - 5, decoder.get());
      decoder.set(d);
      GenericRecord r = reader.read(null, d);
      String type = str(r.get("type"));
      long time = OffsetDateTime.parse(str(r.get("occurred_at"))).toInstant().toEpochMilli();
      String key;
      String carrier = null;
      Object order = r.hasField("order") ? r.get("order") : null;
      if (order instanceof GenericRecord o) {
        key = str(o.get("id"));
        carrier = str(o.get("carrier"));
      } else {
        key = str(r.get("order_id"));
        if (r.hasField("carrier")) {
          carrier = str(r.get("carrier"));
        }
      }
      if (type == null || key == null) {
        return new Event(data, "missing_field");
      }
      return new Event(type, key, str(r.get("event_id")), time, carrier);
    } catch (Exception e) {
      return new Event(data, "undecodable: " + e);
    }
  }

  private static String str(Object o) {
    return o == null ? null : o.toString();
  }
}
