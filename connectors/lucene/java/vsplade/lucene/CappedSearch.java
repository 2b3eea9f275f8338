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
 * Two-phase search over the capped postings that vsplade_lucene/capped.py writes beside a Lucene
 * index (--prune cap=C), as one JNI call: phase 1 scores each kept query term's capped postings
 * (its C heaviest) into a window of candidates, phase 2 scores those exactly from the forward
 * index (each candidate's whole page, read in file order, against a table of the query's terms).
 *
 * <p>Why Java: the same two phases in numpy cost ~15 array passes over ~50k postings a query
 * plus the interpreter between them; here it is one pass. Why the forward index for phase 2 and
 * not a binary search per query term in inverted postings: those are ~50k random reads into
 * gigabytes at 1M pages, the window's pages ~200 sequential reads of 3.3 KB. Files are read through Lucene's
 * MMapDirectory (little-endian, any size). Scores are Lucene's ImpactSimilarity: each clause
 * float32(query impact x page impact), summed in double, returned as float32; ties by doc id.
 * Thread-safe: each thread scores into its own accumulator.
 */
public final class CappedSearch implements Closeable {
  private final Directory dir;
  private final IndexInput[] inputs = new IndexInput[4];
  private final RandomAccessInput fwdImpacts;
  private final long[] capOffsets, fwdStarts;
  private final boolean shortImpacts, shortTerms;
  private final int numDocs;
  private final ThreadLocal<float[]> acc;
  private final ThreadLocal<float[]> queryWeights;

  /**
   * path: the index dir; shortImpacts: the capped impacts are uint16 (else int32); shortTerms: the
   * forward index's term ids are uint16 (else int32); vocabSize: the term id bound.
   */
  public CappedSearch(String path, int numDocs, boolean shortImpacts, boolean shortTerms, int vocabSize)
      throws IOException {
    this.dir = new MMapDirectory(Paths.get(path));
    this.numDocs = numDocs;
    this.shortImpacts = shortImpacts;
    this.shortTerms = shortTerms;
    this.capOffsets = longs("vsplade-capped.offsets");
    slice(0, "vsplade-capped.docs");  // inputs[0], [1]: read in bulk through clones
    slice(1, "vsplade-capped.impacts");
    slice(2, "vsplade-forward.terms");  // read in bulk through clones of inputs[2]
    fwdImpacts = slice(3, "vsplade-forward.impacts");
    // the forward index's doc starts from its per-doc counts (forward.py)
    fwdStarts = new long[numDocs + 1];
    try (IndexInput in = dir.openInput("vsplade-forward.counts", IOContext.READONCE)) {
      for (int d = 0; d < numDocs; d++) fwdStarts[d + 1] = fwdStarts[d] + in.readInt();
    }
    // phase 1 accumulates in float (4 bytes a doc: half the cache misses of double); it only
    // picks the window, phase 2 scores exactly
    acc = ThreadLocal.withInitial(() -> new float[numDocs]);
    queryWeights = ThreadLocal.withInitial(() -> new float[vocabSize]);
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

  /**
   * The top k (little-endian int32 doc id, float32 score, hit after hit; score descending, then
   * doc id). kept: phase 1's term ids and float query impacts (int32/float32 LE pairs); all: every
   * query term the same way; mask: one bit per doc (LSB first) the hits must lie in, or null.
   */
  public byte[] top(byte[] kept, byte[] all, int window, int k, byte[] mask) throws IOException {
    int[] cand = candidates(kept, window, mask);
    Arrays.sort(cand);  // the forward index in file order
    float[] qw = queryWeights.get();
    ByteBuffer q = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
    int[] terms = new int[all.length / 8];
    int nt = 0;
    while (q.remaining() >= 8) {
      int t = q.getInt();
      float w = q.getFloat();
      if (t >= 0 && t < qw.length) {
        qw[t] = w;
        terms[nt++] = t;
      }
    }
    // phase 2: each candidate's whole page from the forward index (one sequential read a page)
    double[] score = new double[cand.length];
    // a page's term ids in one bulk read (a copy, not a call per id); its impacts one by one,
    // only where the query has the term
    IndexInput termsIn = inputs[2].clone();
    int width = shortTerms ? 2 : 4;
    byte[] buf = new byte[4096];
    try {
      for (int j = 0; j < cand.length; j++) {
        long start = fwdStarts[cand[j]];
        int len = (int) (fwdStarts[cand[j] + 1] - start);
        if (buf.length < width * len) buf = new byte[width * len];
        termsIn.seek(width * start);
        termsIn.readBytes(buf, 0, width * len);
        double sum = 0;
        for (int i = 0; i < len; i++) {
          int t = shortTerms ? ((buf[2 * i] & 0xFF) | (buf[2 * i + 1] & 0xFF) << 8)
              : ((buf[4 * i] & 0xFF) | (buf[4 * i + 1] & 0xFF) << 8 | (buf[4 * i + 2] & 0xFF) << 16 | buf[4 * i + 3] << 24);
          float w = t >= 0 && t < qw.length ? qw[t] : 0f;
          if (w != 0f) sum += w * (float) fwdImpacts.readInt(4 * (start + i));  // float32 product, double sum
        }
        score[j] = sum;
      }
    } finally {
      for (int i = 0; i < nt; i++) qw[terms[i]] = 0f;
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
    float[] a = acc.get();
    IndexInput docsIn = inputs[0].clone(), impsIn = inputs[1].clone();
    int impWidth = shortImpacts ? 2 : 4;
    byte[] docBuf = new byte[16384], impBuf = new byte[8192];
    int[] touched = new int[1024];
    int n = 0;
    ByteBuffer q = ByteBuffer.wrap(kept).order(ByteOrder.LITTLE_ENDIAN);
    while (q.remaining() >= 8) {
      int t = q.getInt();
      double w = q.getFloat();
      if (t < 0 || t + 1 >= capOffsets.length) continue;
      long start = capOffsets[t];
      int len = (int) (capOffsets[t + 1] - start);
      // the term's capped postings in two bulk reads (copies, not a call per posting)
      if (docBuf.length < 4 * len) docBuf = new byte[4 * len];
      if (impBuf.length < impWidth * len) impBuf = new byte[impWidth * len];
      docsIn.seek(4 * start);
      docsIn.readBytes(docBuf, 0, 4 * len);
      impsIn.seek(impWidth * start);
      impsIn.readBytes(impBuf, 0, impWidth * len);
      for (int i = 0; i < len; i++) {
        int d = (docBuf[4 * i] & 0xFF) | (docBuf[4 * i + 1] & 0xFF) << 8 | (docBuf[4 * i + 2] & 0xFF) << 16
            | docBuf[4 * i + 3] << 24;
        if (mask != null && (mask[d >>> 3] & (1 << (d & 7))) == 0) continue;
        if (a[d] == 0) {
          if (n == touched.length) touched = Arrays.copyOf(touched, 2 * n);
          touched[n++] = d;
        }
        int imp = shortImpacts ? ((impBuf[2 * i] & 0xFF) | (impBuf[2 * i + 1] & 0xFF) << 8)
            : ((impBuf[4 * i] & 0xFF) | (impBuf[4 * i + 1] & 0xFF) << 8 | (impBuf[4 * i + 2] & 0xFF) << 16
               | impBuf[4 * i + 3] << 24);
        a[d] += (float) (w * imp);
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

  private static void up(int[] h, int i, float[] a) {
    while (i > 0) {
      int p = (i - 1) >>> 1;
      if (a[h[i]] >= a[h[p]]) break;
      int x = h[i]; h[i] = h[p]; h[p] = x;
      i = p;
    }
  }

  private static void down(int[] h, int size, float[] a) {
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
