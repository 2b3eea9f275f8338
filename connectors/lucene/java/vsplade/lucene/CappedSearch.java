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
 * index (each candidate's page, read in file order, searched for the query's terms).
 *
 * <p>Why Java: the same two phases in numpy cost ~15 array passes over ~50k postings a query
 * plus the interpreter between them; here it is one pass. Why the forward index for phase 2 and
 * not a binary search per query term in inverted postings: those are ~50k random reads into
 * gigabytes at 1M pages, the window's pages ~200 sequential reads of 3.3 KB. Files are read through Lucene's
 * MMapDirectory (little-endian, any size). Scores are Lucene's ImpactSimilarity: each clause
 * float32(query impact x page impact), summed in double, returned as float32; ties by doc id.
 * Thread-safe: each thread scores into its own buffers.
 */
public final class CappedSearch implements Closeable {
  private final Directory dir;
  private final IndexInput[] inputs = new IndexInput[4];
  private final RandomAccessInput fwdImpacts;
  private final long[] capOffsets, fwdStarts;
  private final boolean shortImpacts, shortTerms, sortedTerms;
  private final int numDocs;
  private final ThreadLocal<Scratch> scratch;
  private final ThreadLocal<float[]> queryWeights;
  private final ThreadLocal<long[]> queryBits;

  /**
   * path: the index dir; shortImpacts: the capped impacts are uint16 (else int32); shortTerms: the
   * forward index's term ids are uint16 (else int32); sortedTerms: they ascend within each page
   * (forward.py); vocabSize: the term id bound.
   */
  public CappedSearch(String path, int numDocs, boolean shortImpacts, boolean shortTerms, boolean sortedTerms,
                      int vocabSize) throws IOException {
    this.dir = new MMapDirectory(Paths.get(path));
    this.numDocs = numDocs;
    this.shortImpacts = shortImpacts;
    this.shortTerms = shortTerms;
    this.sortedTerms = sortedTerms;
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
    scratch = ThreadLocal.withInitial(() -> new Scratch(numDocs));
    queryWeights = ThreadLocal.withInitial(() -> new float[vocabSize]);
    queryBits = ThreadLocal.withInitial(() -> new long[(vocabSize + 63) >>> 6]);
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
    // phase 2, pass A: where each candidate's page holds a query term. The page's term ids come
    // in one bulk read (a copy, not a call per id; the pages in file order). When they ascend
    // (forward.py "sorted_terms"), each query term, ascending, is found by binary search from
    // where the previous one stopped: ~12 x 9 probes, not 550 tests (pass A 480 -> 280 us for
    // 200 pages at 1M). Otherwise every id is tested against a bitset of the query's terms
    // (6 KB, in L1). Pass B reads the matched impacts: independent loads the CPU overlaps.
    long[] bits = queryBits.get();
    for (int i = 0; i < nt; i++) bits[terms[i] >>> 6] |= 1L << terms[i];
    int[] sortedQuery = Arrays.copyOf(terms, nt);
    Arrays.sort(sortedQuery);
    IndexInput termsIn = inputs[2].clone();
    int width = shortTerms ? 2 : 4;
    byte[] buf = new byte[4096];
    Matches mt = new Matches();
    try {
      for (int j = 0; j < cand.length; j++) {
        long start = fwdStarts[cand[j]];
        int len = (int) (fwdStarts[cand[j] + 1] - start);
        if (buf.length < width * len) buf = new byte[width * len];
        termsIn.seek(width * start);
        termsIn.readBytes(buf, 0, width * len);
        if (sortedTerms) {
          int lo = 0;
          for (int qi = 0; qi < nt && lo < len; qi++) {
            int t = sortedQuery[qi];
            int hi = len;
            while (lo < hi) {
              int mid = (lo + hi) >>> 1;
              if (termAt(buf, mid) < t) lo = mid + 1;
              else hi = mid;
            }
            if (lo < len && termAt(buf, lo) == t) mt.add(start + lo, qw[t], j);
          }
        } else {
          for (int i = 0; i < len; i++) {
            int t = termAt(buf, i);
            if (t >= 0 && t < qw.length && (bits[t >>> 6] & (1L << t)) != 0) mt.add(start + i, qw[t], j);
          }
        }
      }
    } finally {
      for (int i = 0; i < nt; i++) {
        qw[terms[i]] = 0f;
        bits[terms[i] >>> 6] = 0;
      }
    }
    // pass B: float32 products summed in double (exact: integers far below 2^53, so the order of
    // a page's terms does not matter), cast to float32 below, as Lucene does
    double[] score = new double[cand.length];
    for (int i = 0; i < mt.n; i++) score[mt.page[i]] += mt.weight[i] * (float) fwdImpacts.readInt(4 * mt.pos[i]);
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

  /**
   * Phase 1: the window best docs by their capped postings' partial scores (unordered; equal
   * scores: the lower doc id first, so the window does not depend on the order docs were seen).
   *
   * <p>Why in blocks of docs: a float per doc of the index is 4 MB at 1M pages, and ~36k
   * postings a query landing anywhere in it were as many cache misses (phase 1 0.67 -> 0.35 ms at
   * 1M Quality pages, cap 3000). Each term's capped postings are sorted by doc id, so the kept
   * terms are walked together one block of BLOCK docs at a time into one block-sized accumulator
   * (128 KB, in L2, reused by every block and query); each doc's contributions are still added in
   * the query's term order (the same float sums).
   */
  int[] candidates(byte[] kept, int window, byte[] mask) throws IOException {
    Scratch s = scratch.get();
    float[] a = s.acc;
    IndexInput docsIn = inputs[0].clone(), impsIn = inputs[1].clone();
    int impWidth = shortImpacts ? 2 : 4;
    ByteBuffer q = ByteBuffer.wrap(kept).order(ByteOrder.LITTLE_ENDIAN);
    int nTerms = kept.length / 8;
    int[] from = new int[nTerms + 1], cursor = new int[nTerms];
    int total = 0, m0 = 0;
    // every kept term's postings in two bulk reads each: doc ids as ints, impacts times the
    // query weight as float32 contributions
    for (int j = 0; j < nTerms; j++) {
      int t = q.getInt();
      double w = q.getFloat();
      from[m0] = total;
      if (t < 0 || t + 1 >= capOffsets.length) continue;
      long start = capOffsets[t];
      int len = (int) (capOffsets[t + 1] - start);
      s.ensure(total + len, impWidth * len);
      docsIn.seek(4 * start);
      docsIn.readInts(s.docs, total, len);
      impsIn.seek(impWidth * start);
      impsIn.readBytes(s.bytes, 0, impWidth * len);
      byte[] b = s.bytes;
      float[] c = s.contrib;
      for (int i = 0; i < len; i++) {
        int imp = shortImpacts ? ((b[2 * i] & 0xFF) | (b[2 * i + 1] & 0xFF) << 8)
            : ((b[4 * i] & 0xFF) | (b[4 * i + 1] & 0xFF) << 8 | (b[4 * i + 2] & 0xFF) << 16 | b[4 * i + 3] << 24);
        c[total + i] = (float) (w * imp);
      }
      total += len;
      cursor[m0] = from[m0];
      m0++;
    }
    from[m0] = total;
    int[] docs = s.docs;
    float[] contrib = s.contrib;
    int[] touched = s.touched;
    int m = Math.min(window, total);
    // a min-heap of the m best (partial score, doc) so far; scores kept beside the docs, as
    // each block's accumulator slots are cleared for the next query
    int[] heap = new int[m];
    float[] hs = new float[m];
    int size = 0;
    for (int lo = 0; lo < numDocs; lo += BLOCK) {
      int hi = Math.min(numDocs, lo + BLOCK);
      int n = 0;
      for (int j = 0; j < m0; j++) {
        int i = cursor[j], end = from[j + 1];
        for (; i < end; i++) {
          int d = docs[i];
          if (d >= hi) break;
          if (mask != null && (mask[d >>> 3] & (1 << (d & 7))) == 0) continue;
          int o = d - lo;
          if (a[o] == 0) {
            if (n == touched.length) touched = s.touched = Arrays.copyOf(touched, 2 * n);
            touched[n++] = o;
          }
          a[o] += contrib[i];
        }
        cursor[j] = i;
      }
      for (int i = 0; i < n; i++) {
        int o = touched[i], d = lo + o;
        float v = a[o];
        a[o] = 0;
        if (size < m) {
          heap[size] = d;
          hs[size] = v;
          up(heap, hs, size++);
        } else if (less(hs[0], heap[0], v, d)) {
          heap[0] = d;
          hs[0] = v;
          down(heap, hs, size);
        }
      }
    }
    return size == m ? heap : Arrays.copyOf(heap, size);
  }

  /** Phase 2's matches: (position in the forward index, query impact, candidate index). */
  private static final class Matches {
    long[] pos = new long[256];
    float[] weight = new float[256];
    int[] page = new int[256];
    int n;

    void add(long p, float w, int j) {
      if (n == pos.length) {
        pos = Arrays.copyOf(pos, 2 * n);
        weight = Arrays.copyOf(weight, 2 * n);
        page = Arrays.copyOf(page, 2 * n);
      }
      pos[n] = p;
      weight[n] = w;
      page[n++] = j;
    }
  }

  /** The i-th term id of a page's bytes (uint16 or int32, little-endian). */
  private int termAt(byte[] b, int i) {
    return shortTerms ? ((b[2 * i] & 0xFF) | (b[2 * i + 1] & 0xFF) << 8)
        : ((b[4 * i] & 0xFF) | (b[4 * i + 1] & 0xFF) << 8 | (b[4 * i + 2] & 0xFF) << 16 | b[4 * i + 3] << 24);
  }

  /** Docs per block of phase 1's accumulation: 128 KB of float scores, inside a core's L2
   * (2^11..2^17 measured: 2^13..2^15 best, within 5%). */
  static final int BLOCK = 1 << 15;

  /** Per-thread buffers of phase 1 (grown, never shrunk). */
  private static final class Scratch {
    final float[] acc;
    int[] docs = new int[1 << 16], touched = new int[1 << 12];
    float[] contrib = new float[1 << 16];
    byte[] bytes = new byte[1 << 14];

    Scratch(int numDocs) {
      acc = new float[Math.min(numDocs, BLOCK)];
    }

    void ensure(int postings, int byteCount) {
      if (docs.length < postings) {
        int n = Math.max(postings, 2 * docs.length);
        docs = Arrays.copyOf(docs, n);
        contrib = Arrays.copyOf(contrib, n);
      }
      if (bytes.length < byteCount) bytes = new byte[Math.max(byteCount, 2 * bytes.length)];
    }
  }

  /** The heap's order: (score x, doc dx) ranks below (y, dy): a lower partial score, or equal and a higher doc id. */
  private static boolean less(float x, int dx, float y, int dy) {
    return x < y || (x == y && dx > dy);
  }

  private static void up(int[] h, float[] hs, int i) {
    while (i > 0) {
      int p = (i - 1) >>> 1;
      if (!less(hs[i], h[i], hs[p], h[p])) break;
      swap(h, hs, i, p);
      i = p;
    }
  }

  private static void down(int[] h, float[] hs, int size) {
    int i = 0;
    while (true) {
      int l = 2 * i + 1, r = l + 1, s = i;
      if (l < size && less(hs[l], h[l], hs[s], h[s])) s = l;
      if (r < size && less(hs[r], h[r], hs[s], h[s])) s = r;
      if (s == i) return;
      swap(h, hs, i, s);
      i = s;
    }
  }

  private static void swap(int[] h, float[] hs, int i, int j) {
    int x = h[i]; h[i] = h[j]; h[j] = x;
    float y = hs[i]; hs[i] = hs[j]; hs[j] = y;
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
