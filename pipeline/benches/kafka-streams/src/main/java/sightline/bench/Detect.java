package sightline.bench;

import java.time.DayOfWeek;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The rules of topologies/order-to-cash.yaml: an order is paid within 15 minutes, shipped
 * within 24 hours of payment (48 h for DHL, 36 h on peak days, 48 h at weekends, in
 * Europe/Amsterdam; the first that matches), and invoiced within 48 hours; a cancellation closes
 * it. Alerts, as Sightline names them:
 *
 * <ul>
 *   <li>{@code missing_step} FIRING when stream time passes a step's deadline, RESOLVED when the
 *       step arrives or the order is cancelled; a step that arrives past its deadline before
 *       stream time got there gives both at once (late);
 *   <li>{@code duplicate}: an event id seen before, or a step already recorded;
 *   <li>{@code out_of_order}: a step that happened before the step it comes after;
 *   <li>{@code orphan} FIRING when an order's other events have waited 2 hours of stream time for
 *       its confirmation, RESOLVED when it comes.
 * </ul>
 *
 * Deadlines are kept in a second store, keyed by due time, and fired by a stream-time
 * punctuator.
 */
final class Detect implements Processor<String, Event, String, Object> {
  static final String INSTANCES = "instances";
  static final String DEADLINES = "deadlines";
  static final String ALERTS = "alerts";
  static final String DEAD_LETTERS = "dead-letters";

  static final int ORDERED = 0, PAID = 1, SHIPPED = 2, INVOICED = 3, GIFT_WRAPPED = 4, CANCELLED = 5;
  static final int STEPS = 6;
  static final String[] NAMES = {"ordered", "paid", "shipped", "invoiced", "gift_wrapped", "cancelled"};
  /** The step each step comes after (-1: none). */
  static final int[] AFTER = {-1, ORDERED, PAID, ORDERED, -1, -1};
  /** Deadline entries that are not steps. */
  static final int ORPHAN = 8, TTL = 9;

  static final long MIN = 60_000, HOUR = 60 * MIN, DAY = 24 * HOUR;
  static final long ORPHAN_GRACE = 2 * HOUR, TTL_MS = 14 * DAY;
  static final ZoneId ZONE = ZoneId.of("Europe/Amsterdam");
  static final Set<LocalDate> PEAK = Set.of(LocalDate.of(2026, 11, 27), LocalDate.of(2026, 11, 30));

  private ProcessorContext<String, Object> ctx;
  private KeyValueStore<String, byte[]> instances;
  private KeyValueStore<String, byte[]> deadlines;
  private static final byte[] EMPTY = new byte[0];
  /** Stream time of the last punctuation (0 after a start: the first scan reads everything). */
  private long firedTo;

  @Override
  public void init(ProcessorContext<String, Object> context) {
    ctx = context;
    instances = context.getStateStore(INSTANCES);
    deadlines = context.getStateStore(DEADLINES);
    context.schedule(Duration.ofSeconds(10), PunctuationType.STREAM_TIME, this::punctuate);
  }

  static int step(String type) {
    switch (type) {
      case "order_confirmed":
        return ORDERED;
      case "payment_captured":
        return PAID;
      case "shipment_dispatched":
        return SHIPPED;
      case "invoice_posted":
        return INVOICED;
      case "gift_wrapped":
        return GIFT_WRAPPED;
      case "order_cancelled":
        return CANCELLED;
      default:
        return -1;
    }
  }

  /** The deadline window of step `i` for an anchor at `anchor`. */
  static long within(int i, long anchor, String carrier) {
    switch (i) {
      case PAID:
        return 15 * MIN;
      case INVOICED:
        return 48 * HOUR;
      case SHIPPED:
        if ("dhl".equals(carrier)) {
          return 48 * HOUR;
        }
        LocalDate day = Instant.ofEpochMilli(anchor).atZone(ZONE).toLocalDate();
        if (PEAK.contains(day)) {
          return 36 * HOUR;
        }
        DayOfWeek d = day.getDayOfWeek();
        return d == DayOfWeek.SATURDAY || d == DayOfWeek.SUNDAY ? 48 * HOUR : 24 * HOUR;
      default:
        return -1;
    }
  }

  @Override
  public void process(Record<String, Event> record) {
    OrderToCash.PROCESSED.incrementAndGet();
    Event e = record.value();
    if (e.poison()) {
      var headers = new org.apache.kafka.common.header.internals.RecordHeaders();
      headers.add("reason", e.reason.getBytes(java.nio.charset.StandardCharsets.UTF_8));
      ctx.forward(
          new Record<String, Object>(record.key(), e.raw, record.timestamp(), headers), DEAD_LETTERS);
      return;
    }
    int i = step(e.type);
    if (i < 0) {
      return;
    }
    long t = e.time;
    byte[] stored = instances.get(e.key);
    boolean created = stored == null;
    Instance inst = created ? new Instance(t) : Instance.decode(stored);
    if (inst.seen[CANCELLED] != Instance.NONE) {
      return;
    }
    if ((e.eventId != null && inst.eventIds.contains(e.eventId)) || inst.seen[i] != Instance.NONE) {
      alert(e.key, "duplicate", NAMES[i], "resolved", t);
      return;
    }
    inst.seen[i] = t;
    if (e.eventId != null) {
      inst.eventIds.add(e.eventId);
    }
    inst.first = Math.min(inst.first, t);
    if (inst.carrier == null && e.carrier != null) {
      inst.carrier = e.carrier;
    }
    if (created) {
      deadline(inst.first + TTL_MS, TTL, e.key);
      if (i != ORDERED) {
        deadline(t + ORPHAN_GRACE, ORPHAN, e.key);
      }
    }
    if (i == ORDERED && inst.orphanFiring) {
      inst.orphanFiring = false;
      alert(e.key, "orphan", null, "resolved", t);
    }
    // A step that happened before the step it comes after, in either direction.
    if (AFTER[i] >= 0 && inst.seen[AFTER[i]] != Instance.NONE && t < inst.seen[AFTER[i]]) {
      alert(e.key, "out_of_order", NAMES[i], "resolved", t);
    }
    for (int j = 0; j < STEPS; j++) {
      if (AFTER[j] == i && inst.seen[j] != Instance.NONE && inst.seen[j] < t) {
        alert(e.key, "out_of_order", NAMES[j], "resolved", t);
      }
    }
    if (i == CANCELLED) {
      for (int j = 0; j < STEPS; j++) {
        if ((inst.firing & (1 << j)) != 0) {
          alert(e.key, "missing_step", NAMES[j], "resolved", t);
        }
      }
      inst.firing = 0;
      instances.put(e.key, inst.encode());
      return;
    }
    // This step against its own deadline.
    if (AFTER[i] >= 0 && inst.seen[AFTER[i]] != Instance.NONE) {
      arrived(inst, i, e.key, t);
    }
    // The steps that come after this one: due now, or already here (out of order).
    for (int j = 0; j < STEPS; j++) {
      if (AFTER[j] != i) {
        continue;
      }
      if (inst.seen[j] != Instance.NONE) {
        arrived(inst, j, e.key, inst.seen[j]);
      } else {
        deadline(t + within(j, t, inst.carrier), j, e.key);
      }
    }
    instances.put(e.key, inst.encode());
  }

  /** Step `i` (its anchor known) arrived at `t`: resolves its alert, or finds it late. */
  private void arrived(Instance inst, int i, String key, long t) {
    int bit = 1 << i;
    if ((inst.firing & bit) != 0) {
      inst.firing &= ~bit;
      alert(key, "missing_step", NAMES[i], "resolved", t);
    } else if ((inst.settled & bit) == 0) {
      long anchor = inst.seen[AFTER[i]];
      if (t > anchor + within(i, anchor, inst.carrier)) {
        alert(key, "missing_step", NAMES[i], "firing", t);
        alert(key, "missing_step", NAMES[i], "resolved", t);
      }
    }
    inst.settled |= bit;
  }

  private void punctuate(long now) {
    // Deadlines before the last punctuation were fired and deleted: the scan starts there, and
    // does not wade through their tombstones again.
    List<KeyValue<String, byte[]>> due = new ArrayList<>();
    try (KeyValueIterator<String, byte[]> it = deadlines.range(pad(firedTo), pad(now) + "}")) {
      while (it.hasNext()) {
        due.add(it.next());
      }
    }
    firedTo = now;
    for (KeyValue<String, byte[]> d : due) {
      deadlines.delete(d.key);
      long at = Long.parseLong(d.key.substring(0, 13));
      int what = d.key.charAt(14) - '0';
      String key = d.key.substring(16);
      byte[] stored = instances.get(key);
      if (stored == null) {
        continue;
      }
      Instance inst = Instance.decode(stored);
      boolean closed = inst.seen[CANCELLED] != Instance.NONE;
      if (what == TTL) {
        if (inst.orphanFiring) {
          alert(key, "orphan", null, "resolved", now);
        }
        for (int j = 0; j < STEPS; j++) {
          if ((inst.firing & (1 << j)) != 0) {
            alert(key, "missing_step", NAMES[j], "resolved", now);
          }
        }
        instances.delete(key);
        continue;
      }
      if (what == ORPHAN) {
        if (!closed && inst.seen[ORDERED] == Instance.NONE && !inst.orphanFiring) {
          inst.orphanFiring = true;
          alert(key, "orphan", null, "firing", now);
          instances.put(key, inst.encode());
        }
        continue;
      }
      int bit = 1 << what;
      long anchor = inst.seen[AFTER[what]];
      if (closed
          || inst.seen[what] != Instance.NONE
          || (inst.settled & bit) != 0
          || anchor == Instance.NONE
          || anchor + within(what, anchor, inst.carrier) > at) {
        continue;
      }
      inst.firing |= bit;
      inst.settled |= bit;
      alert(key, "missing_step", NAMES[what], "firing", now);
      instances.put(key, inst.encode());
    }
  }

  private void deadline(long at, int what, String key) {
    // One already past the last scan goes where the next scan starts.
    deadlines.put(pad(Math.max(at, firedTo)) + "|" + what + "|" + key, EMPTY);
  }

  /** Thirteen digits, zero-padded: keys sort by due time. */
  private static String pad(long ms) {
    String s = Long.toString(Math.max(ms, 0));
    return "0000000000000".substring(s.length()) + s;
  }

  private void alert(String key, String kind, String step, String status, long at) {
    String json =
        "{\"workflow\":\"order-to-cash\",\"key\":\""
            + key
            + "\",\"kind\":\""
            + kind
            + "\",\"status\":\""
            + status
            + "\",\"step\":"
            + (step == null ? "null" : "\"" + step + "\"")
            + ",\"at\":"
            + at
            + "}";
    ctx.forward(new Record<String, Object>(key, json, at), ALERTS);
  }
}
