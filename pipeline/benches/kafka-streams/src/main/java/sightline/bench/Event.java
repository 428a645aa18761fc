package sightline.bench;

/** A decoded business event, or a record that could not be decoded ({@code raw} set). */
final class Event {
  final String type;
  final String key;
  final String eventId;
  final long time;
  /** The carrier dimension: the order's, or the shipment's. */
  final String carrier;
  /** The undecodable record, for the dead-letter topic; null for a good event. */
  final byte[] raw;
  /** Why it could not be decoded. */
  final String reason;

  Event(String type, String key, String eventId, long time, String carrier) {
    this.type = type;
    this.key = key;
    this.eventId = eventId;
    this.time = time;
    this.carrier = carrier;
    this.raw = null;
    this.reason = null;
  }

  Event(byte[] raw, String reason) {
    this.type = null;
    this.key = null;
    this.eventId = null;
    this.time = -1;
    this.carrier = null;
    this.raw = raw;
    this.reason = reason;
  }

  boolean poison() {
    return raw != null;
  }
}
