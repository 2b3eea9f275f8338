package vsplade.lucene;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Paths;
import java.util.Arrays;

import org.apache.lucene.store.Directory;
import org.apache.lucene.store.IOContext;
import org.apache.lucene.store.IndexInput;
import org.apache.lucene.store.MMapDirectory;
import org.apache.lucene.store.RandomAccessInput;

/**
 * Two-phase search over the capped and inverted postings that vsplade_lucene/capped.py writes
 * beside a Lucene index (--prune cap=C), as one JNI call: phase 1 scores each kept query term's
 * capped postings (its C heaviest) into a window of candidates, phase 2 scores those exactly from
 * the inverted postings (a binary search of the sorted window per query term).
 *
 * <p>Why Java: the same two phases in numpy cost ~15 array passes over ~50k postings a query
 * plus the interpreter between them; here it is one pass. Files are read through Lucene's
 * MMapDirectory (little-endian, any size). Scores are Lucene's ImpactSimilarity: each clause
 * float32(query impact x page impact), summed in double, returned as float32; ties by doc id.
 * Thread-safe: each thread scores into its own accumulator.
 */
public final class CappedSearch implements Closeable {
  private final Directory dir;
  private final IndexInput[] inputs = new IndexInput[4];
  private final RandomAccessInput capDocs, capImpacts, invDocs, invImpacts;
  private final long[] capOffsets, invOffsets;
  private final boolean shortImpacts;
  private final int numDocs;
  private final ThreadLocal<double[]> acc;

  public CappedSearch(String path, int numDocs, boolean shortImpacts) throws IOException {
    this.dir = new MMapDirectory(Paths.get(path));
    this.numDocs = numDocs;
    this.shortImpacts = shortImpacts;
    this.capOffsets = longs("vsplade-capped.offsets");
    this.invOffsets = longs("vsplade-inverted.offsets");
    capDocs = slice(0, "vsplade-capped.docs");
    capImpacts = slice(1, "vsplade-capped.impacts");
    invDocs = slice(2, "vsplade-inverted.docs");
    invImpacts = slice(3, "vsplade-inverted.impacts");
    acc = ThreadLocal.withInitial(() -> new double[numDocs]);
  }

  private long[] longs(String name) throws IOException {
    try (IndexInput in = dir.openInput(name, IOContext.READONCE)) {
      long[] out = new long[(int) (in.length() / 8)];
      in.readLongs(out, 0, out.length);
      return out;
    }
  }

  private RandomAccessInput slice(int i, String name) throws IOException {
    inputs[i] = dir.openInput(name, IOContext.DEFAULT);
    return inputs[i].randomAccessSlice(0, inputs[i].length());
  }

  private int impact(RandomAccessInput in, long p) throws IOException {
    return shortImpacts ? (in.readShort(2 * p) & 0xFFFF) : in.readInt(4 * p);
  }

  /**
   * The top k (little-endian int32 doc id, float32 score, hit after hit; score descending, then
   * doc id). kept: phase 1's term ids and float query impacts (int32/float32 LE pairs); all: every
   * query term the same way; mask: one bit per doc (LSB first) the hits must lie in, or null.
   */
  public byte[] top(byte[] kept, byte[] all, int window, int k, byte[] mask) throws IOException {
    int[] cand = candidates(kept, window, mask);
    Arrays.sort(cand);
    double[] score = new double[cand.length];
    ByteBuffer q = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
    while (q.remaining() >= 8) {
      int t = q.getInt();
      float w = q.getFloat();
      if (t < 0 || t + 1 >= invOffsets.length) continue;
      long lo = invOffsets[t], hi = invOffsets[t + 1];
      for (int j = 0; j < cand.length && lo < hi; j++) {
        // lower bound of cand[j] in [lo, hi): the window is sorted, so lo only moves forward
        long a = lo, b = hi;
        while (a < b) {
          long m = (a + b) >>> 1;
          if (invDocs.readInt(4 * m) < cand[j]) a = m + 1; else b = m;
        }
        lo = a;
        if (a < hi && invDocs.readInt(4 * a) == cand[j]) {
          score[j] += w * (float) impact(invImpacts, a);  // float32 product, double sum
        }
      }
    }
    // the k best by (float32 score desc, doc asc); a page sharing no query term is no hit
    Integer[] order = new Integer[cand.length];
    int n = 0;
    float[] f = new float[cand.length];
    for (int j = 0; j < cand.length; j++) {
      f[j] = (float) score[j];
      if (f[j] > 0) order[n++] = j;
    }
    Arrays.sort(order, 0, n, (x, y) -> f[x] != f[y] ? Float.compare(f[y], f[x]) : Integer.compare(cand[x], cand[y]));
    int m = Math.min(k, n);
    ByteBuffer out = ByteBuffer.allocate(8 * m).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < m; i++) {
      out.putInt(cand[order[i]]);
      out.putFloat(f[order[i]]);
    }
    return out.array();
  }

  /** Phase 1: the window best docs by their capped postings' partial scores (unordered). */
  int[] candidates(byte[] kept, int window, byte[] mask) throws IOException {
    double[] a = acc.get();
    int[] touched = new int[1024];
    int n = 0;
    ByteBuffer q = ByteBuffer.wrap(kept).order(ByteOrder.LITTLE_ENDIAN);
    while (q.remaining() >= 8) {
      int t = q.getInt();
      double w = q.getFloat();
      if (t < 0 || t + 1 >= capOffsets.length) continue;
      for (long p = capOffsets[t], end = capOffsets[t + 1]; p < end; p++) {
        int d = capDocs.readInt(4 * p);
        if (mask != null && (mask[d >>> 3] & (1 << (d & 7))) == 0) continue;
        if (a[d] == 0) {
          if (n == touched.length) touched = Arrays.copyOf(touched, 2 * n);
          touched[n++] = d;
        }
        a[d] += w * impact(capImpacts, p);
      }
    }
    int m = Math.min(window, n);
    // a min-heap of the m best (score, doc) seen so far
    int[] heap = new int[m];
    int size = 0;
    for (int i = 0; i < n; i++) {
      int d = touched[i];
      if (size < m) {
        heap[size] = d;
        up(heap, size++, a);
      } else if (a[d] > a[heap[0]]) {
        heap[0] = d;
        down(heap, size, a);
      }
    }
    for (int i = 0; i < n; i++) a[touched[i]] = 0;
    return heap;
  }

  private static void up(int[] h, int i, double[] a) {
    while (i > 0) {
      int p = (i - 1) >>> 1;
      if (a[h[i]] >= a[h[p]]) break;
      int x = h[i]; h[i] = h[p]; h[p] = x;
      i = p;
    }
  }

  private static void down(int[] h, int size, double[] a) {
    int i = 0;
    while (true) {
      int l = 2 * i + 1, r = l + 1, s = i;
      if (l < size && a[h[l]] < a[h[s]]) s = l;
      if (r < size && a[h[r]] < a[h[s]]) s = r;
      if (s == i) return;
      int x = h[i]; h[i] = h[s]; h[s] = x;
      i = s;
    }
  }

  public int numDocs() {
    return numDocs;
  }

  @Override
  public void close() throws IOException {
    for (IndexInput in : inputs) {
      if (in != null) in.close();
    }
    dir.close();
  }
}
