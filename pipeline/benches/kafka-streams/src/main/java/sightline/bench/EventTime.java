package sightline.bench;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.streams.processor.TimestampExtractor;

/**
 * Event time from the decoded event (Kafka Streams deserializes before it extracts). A poison
 * record takes its partition's time so far: it neither moves stream time nor is dropped.
 */
final class EventTime implements TimestampExtractor {
  @Override
  public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
    if (record.value() instanceof Event e && !e.poison()) {
      return e.time;
    }
    return Math.max(partitionTime, 0);
  }
}
