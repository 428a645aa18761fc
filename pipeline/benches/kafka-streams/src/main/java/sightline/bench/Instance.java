package sightline.bench;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** One order's progress through the workflow, as kept in the instances store. */
final class Instance {
  static final long NONE = Long.MIN_VALUE;

  /** Earliest event time seen. */
  long first;
  /** When each step happened (event time), or NONE. */
  final long[] seen = new long[Detect.STEPS];
  /** Steps whose missing_step alert is FIRING. */
  int firing;
  /** Steps whose deadline is settled: fired, or met or missed on arrival. */
  int settled;
  boolean orphanFiring;
  String carrier;
  final List<String> eventIds = new ArrayList<>(4);

  Instance(long first) {
    this.first = first;
    Arrays.fill(seen, NONE);
  }

  byte[] encode() {
    byte[] c = carrier == null ? null : carrier.getBytes(StandardCharsets.UTF_8);
    int size = 8 + 8 * seen.length + 4 + 4 + 1 + 4 + (c == null ? 0 : c.length) + 4;
    List<byte[]> ids = new ArrayList<>(eventIds.size());
    for (String id : eventIds) {
      byte[] b = id.getBytes(StandardCharsets.UTF_8);
      ids.add(b);
      size += 4 + b.length;
    }
    ByteBuffer out = ByteBuffer.allocate(size);
    out.putLong(first);
    for (long s : seen) {
      out.putLong(s);
    }
    out.putInt(firing).putInt(settled).put((byte) (orphanFiring ? 1 : 0));
    out.putInt(c == null ? -1 : c.length);
    if (c != null) {
      out.put(c);
    }
    out.putInt(ids.size());
    for (byte[] b : ids) {
      out.putInt(b.length).put(b);
    }
    return out.array();
  }

  static Instance decode(byte[] bytes) {
    ByteBuffer in = ByteBuffer.wrap(bytes);
    Instance i = new Instance(in.getLong());
    for (int s = 0; s < i.seen.length; s++) {
      i.seen[s] = in.getLong();
    }
    i.firing = in.getInt();
    i.settled = in.getInt();
    i.orphanFiring = in.get() == 1;
    int n = in.getInt();
    if (n >= 0) {
      i.carrier = new String(bytes, in.position(), n, StandardCharsets.UTF_8);
      in.position(in.position() + n);
    }
    int ids = in.getInt();
    for (int k = 0; k < ids; k++) {
      int len = in.getInt();
      i.eventIds.add(new String(bytes, in.position(), len, StandardCharsets.UTF_8));
      in.position(in.position() + len);
    }
    return i;
  }
}
