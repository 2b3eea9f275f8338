package vsplade.lucene;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.IntBuffer;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.lucene.document.BinaryDocValuesField;
import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.FieldType;
import org.apache.lucene.document.StoredField;
import org.apache.lucene.document.StringField;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.FieldInfos;
import org.apache.lucene.index.IndexOptions;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.IndexWriterConfig;
import org.apache.lucene.index.ParallelLeafReader;
import org.apache.lucene.index.SlowCodecReaderWrapper;
import org.apache.lucene.search.similarities.Similarity;
import org.apache.lucene.store.ByteBuffersDirectory;
import org.apache.lucene.store.Directory;
import org.apache.lucene.util.BytesRef;

/**
 * Indexes chunks of sparse impact vectors into a Lucene impact index on every core.
 *
 * <p>Why this exists: driving {@code IndexWriter.addDocument} once per page from Python holds
 * the GIL for the string building and pays a JNI round trip per field, so indexing runs on one
 * core. Here Python hands over a whole chunk of pages as a few byte arrays (one JNI call),
 * worker threads each turn a chunk into a one-segment in-memory index, and a single appender
 * adds those segments to the real writer in submission order. Lucene doc ids therefore equal
 * the insertion order (vsplade-docs.jsonl row = doc id, and score ties break by it), as long as
 * the writer's merge policy only merges adjacent segments (LogByteSizeMergePolicy).
 *
 * <p>A chunk is not indexed document by document: {@link ChunkReader} presents it as a
 * segment (postings by a counting sort over term ids, term = term name bytes, freq = integer
 * impact) and {@code addIndexes} writes it through the codec's merge path, which skips
 * Lucene's per-token inversion (hashing every term, growing byte slices). The postings are
 * exactly those of Pyserini's JsonVectorCollection route, which repeats a term {@code impact}
 * times in a text.
 *
 * <p>Encoding of a chunk of n pages (all integers little-endian int32):
 * {@code meta}: UTF-8 bytes of id_0, raw_0, id_1, raw_1, ...; {@code metaLengths}: 2n byte
 * lengths; {@code counts}: n non-zero counts; {@code termIds} and {@code impacts}: sum(counts)
 * values each, page after page.
 */
public final class ImpactIndexer implements Closeable {
  private final IndexWriter writer;
  private final Similarity similarity;
  private final BytesRef[] terms;
  private final String idField;
  private final String rawField;
  private final String contentsField;
  private final int commitEveryDocs;
  private int uncommittedDocs; // appender thread only
  private final ExecutorService workers;
  private final ExecutorService appender;
  private final Semaphore inFlight;
  private final AtomicReference<Throwable> failure = new AtomicReference<>();
  private final FieldInfos fieldInfos;
  private final int[] termsInByteOrder;
  private final AtomicLong buildNanos = new AtomicLong();
  private final AtomicLong appendNanos = new AtomicLong();
  private Future<?> last = CompletableFuture.completedFuture(null);
  private boolean closed;

  /**
   * @param termNames UTF-8 bytes of every term name, in term id order
   * @param termLengths their byte lengths, int32 little-endian
   * @param threads worker threads building chunk segments
   * @param maxChunksInFlight chunks held in memory at once (submit blocks beyond it)
   * @param commitEveryDocs the appender commits the writer after this many docs (0: never;
   *     the caller commits), so a long job is durable without draining the pipeline
   */
  public ImpactIndexer(
      IndexWriter writer,
      Similarity similarity,
      byte[] termNames,
      byte[] termLengths,
      String idField,
      String rawField,
      String contentsField,
      int threads,
      int maxChunksInFlight,
      int commitEveryDocs)
      throws IOException {
    if (threads < 1) throw new IllegalArgumentException("threads must be >= 1, got " + threads);
    if (maxChunksInFlight < 1) {
      throw new IllegalArgumentException("maxChunksInFlight must be >= 1, got " + maxChunksInFlight);
    }
    this.writer = writer;
    this.similarity = similarity;
    this.idField = idField;
    this.rawField = rawField;
    this.contentsField = contentsField;
    this.commitEveryDocs = commitEveryDocs;
    IntBuffer lengths = ints(termLengths);
    this.terms = new BytesRef[lengths.remaining()];
    int off = 0;
    for (int t = 0; t < terms.length; t++) {
      int len = lengths.get(t);
      terms[t] = new BytesRef(termNames, off, len);
      off += len;
    }
    if (off != termNames.length) {
      throw new IllegalArgumentException(
          "term lengths add up to " + off + " bytes, the names hold " + termNames.length);
    }
    this.workers = Executors.newFixedThreadPool(threads, daemon("vsplade-impact-worker"));
    this.appender = Executors.newSingleThreadExecutor(daemon("vsplade-impact-appender"));
    this.inFlight = new Semaphore(maxChunksInFlight);
    this.fieldInfos = templateFieldInfos(similarity, idField, rawField, contentsField);
    Integer[] order = new Integer[terms.length];
    for (int t = 0; t < order.length; t++) order[t] = t;
    Arrays.sort(order, (x, y) -> terms[x].compareTo(terms[y])); // the order a terms dict needs
    this.termsInByteOrder = new int[order.length];
    for (int t = 0; t < order.length; t++) termsInByteOrder[t] = order[t];
  }

  /** Queues one chunk; blocks while maxChunksInFlight chunks are pending. */
  public void submit(byte[] meta, byte[] metaLengths, byte[] counts, byte[] termIds, byte[] impacts)
      throws IOException, InterruptedException {
    submitWithText(meta, metaLengths, counts, termIds, impacts, null, null, null);
  }

  /**
   * As submit, plus each page's text (UTF-8, n byte lengths) indexed for BM25 in textField
   * (TextPages: StandardAnalyzer, BM25 norms); texts null: no text field.
   */
  public void submitWithText(byte[] meta, byte[] metaLengths, byte[] counts, byte[] termIds, byte[] impacts,
      String textField, byte[] texts, byte[] textLengths) throws IOException, InterruptedException {
    if (closed) throw new IllegalStateException("indexer is closed");
    rethrow();
    Chunk chunk = new Chunk(meta, ints(metaLengths), ints(counts), ints(termIds), ints(impacts));
    if (texts != null) {
      chunk.textField = textField;
      chunk.texts = texts;
      chunk.textLengths = ints(textLengths);
    }
    chunk.check(terms.length);
    inFlight.acquire();
    Future<Directory> built;
    try {
      built = workers.submit(() -> build(chunk));
    } catch (RuntimeException e) {
      inFlight.release();
      throw e;
    }
    // one appender thread, FIFO: segments join the index in submission order
    last = appender.submit(() -> {
      try {
        Directory dir = built.get();
        try {
          long t0 = System.nanoTime();
          if (failure.get() == null) {
            writer.addIndexes(dir);
            uncommittedDocs += chunk.counts.remaining();
            if (commitEveryDocs > 0 && uncommittedDocs >= commitEveryDocs) {
              writer.commit();
              uncommittedDocs = 0;
            }
          }
          appendNanos.addAndGet(System.nanoTime() - t0);
        } finally {
          dir.close();
        }
      } catch (ExecutionException e) {
        failure.compareAndSet(null, e.getCause());
      } catch (Throwable t) {
        failure.compareAndSet(null, t);
      } finally {
        inFlight.release();
      }
    });
  }

  /** Waits until every submitted chunk is in the writer (not committed: the caller commits). */
  public void flush() throws IOException, InterruptedException {
    try {
      last.get();
    } catch (ExecutionException e) {
      failure.compareAndSet(null, e.getCause());
    }
    rethrow();
  }

  /** Thread time spent building chunk segments, summed over workers (for progress reports). */
  public double buildSeconds() {
    return buildNanos.get() / 1e9;
  }

  /** Time the appender spent adding segments to the index and committing. */
  public double appendSeconds() {
    return appendNanos.get() / 1e9;
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    workers.shutdownNow();
    appender.shutdown();
    try {
      appender.awaitTermination(60, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private void rethrow() throws IOException {
    Throwable t = failure.get();
    if (t == null) return;
    if (t instanceof IOException) throw new IOException(t.getMessage(), t);
    if (t instanceof RuntimeException) throw new RuntimeException(t.getMessage(), t);
    if (t instanceof Error) throw (Error) t;
    throw new IOException(t.toString(), t);
  }

  private Directory build(Chunk chunk) throws IOException {
    long t0 = System.nanoTime();
    try {
      return buildSegment(chunk);
    } finally {
      buildNanos.addAndGet(System.nanoTime() - t0);
    }
  }

  private Directory buildSegment(Chunk chunk) throws IOException {
    ChunkReader reader = new ChunkReader(fieldInfos, idField, rawField, contentsField, similarity, terms,
        termsInByteOrder, chunk.meta, chunk.metaLengths, chunk.counts, chunk.termIds, chunk.impacts);
    ByteBuffersDirectory dir = new ByteBuffersDirectory();
    IndexWriterConfig cfg = new IndexWriterConfig();
    cfg.setSimilarity(similarity);
    cfg.setOpenMode(IndexWriterConfig.OpenMode.CREATE);
    cfg.setUseCompoundFile(false); // the segment is copied once more by addIndexes anyway
    cfg.setCommitOnClose(true);
    boolean ok = false;
    try (IndexWriter w = new IndexWriter(dir, cfg)) {
      if (chunk.texts == null) {
        w.addIndexes(SlowCodecReaderWrapper.wrap(reader));
      } else {
        // the text field's postings and norms come from a real (inverted) one-segment index of
        // the same pages in the same order, joined to the chunk's fields doc by doc
        try (DirectoryReader text = TextPages.segment(chunk.textField, chunk.texts, chunk.textLengths)) {
          ParallelLeafReader both = new ParallelLeafReader(false, reader, TextPages.onlyLeaf(text));
          w.addIndexes(SlowCodecReaderWrapper.wrap(both));
        }
      }
      ok = true;
    } finally {
      if (!ok) dir.close();
    }
    return dir;
  }

  /** Field infos of a real one-page index with the page fields: Lucene's own schema for them. */
  private static FieldInfos templateFieldInfos(
      Similarity similarity, String idField, String rawField, String contentsField) throws IOException {
    try (ByteBuffersDirectory dir = new ByteBuffersDirectory()) {
      IndexWriterConfig cfg = new IndexWriterConfig();
      cfg.setSimilarity(similarity);
      try (IndexWriter w = new IndexWriter(dir, cfg)) {
        FieldType type = new FieldType();
        type.setStored(false);
        type.setTokenized(true);
        type.setIndexOptions(IndexOptions.DOCS_AND_FREQS);
        type.freeze();
        Document doc = new Document();
        doc.add(new StringField(idField, "template", Field.Store.YES));
        // Anserini 1.7 stores the id as BINARY doc values too and sorts on them to break ties
        doc.add(new BinaryDocValuesField(idField, new BytesRef("template")));
        doc.add(new StoredField(rawField, "{}"));
        doc.add(new Field(contentsField, "template", type));
        w.addDocument(doc);
      }
      try (DirectoryReader r = DirectoryReader.open(dir)) {
        return r.leaves().get(0).reader().getFieldInfos();
      }
    }
  }

  private static IntBuffer ints(byte[] bytes) {
    if (bytes.length % 4 != 0) {
      throw new IllegalArgumentException("int32 array of " + bytes.length + " bytes");
    }
    return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer();
  }

  private static ThreadFactory daemon(String name) {
    AtomicInteger n = new AtomicInteger();
    return r -> {
      Thread t = new Thread(r, name + "-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    };
  }

  private static final class Chunk {
    final byte[] meta;
    final IntBuffer metaLengths;
    final IntBuffer counts;
    final IntBuffer termIds;
    final IntBuffer impacts;
    String textField;
    byte[] texts;
    IntBuffer textLengths;

    Chunk(byte[] meta, IntBuffer metaLengths, IntBuffer counts, IntBuffer termIds, IntBuffer impacts) {
      this.meta = meta;
      this.metaLengths = metaLengths;
      this.counts = counts;
      this.termIds = termIds;
      this.impacts = impacts;
    }

    /** Malformed input fails in submit, on the caller's thread, not later in a worker. */
    void check(int vocabSize) {
      int n = counts.remaining();
      if (metaLengths.remaining() != 2 * n) {
        throw new IllegalArgumentException(n + " pages but " + metaLengths.remaining() + " meta lengths");
      }
      long nnz = 0;
      for (int d = 0; d < n; d++) nnz += counts.get(d);
      if (termIds.remaining() != nnz || impacts.remaining() != nnz) {
        throw new IllegalArgumentException(
            "counts add up to " + nnz + " non-zeros; got " + termIds.remaining() + " term ids and "
                + impacts.remaining() + " impacts");
      }
      if (texts != null) {
        if (textLengths.remaining() != n) {
          throw new IllegalArgumentException(n + " pages but " + textLengths.remaining() + " text lengths");
        }
        long textBytes = 0;
        for (int i = 0; i < n; i++) textBytes += textLengths.get(i);
        if (textBytes != texts.length) {
          throw new IllegalArgumentException("text lengths add up to " + textBytes + ", got " + texts.length);
        }
      }
      long metaBytes = 0;
      for (int i = 0; i < 2 * n; i++) metaBytes += metaLengths.get(i);
      if (metaBytes != meta.length) {
        throw new IllegalArgumentException("meta lengths add up to " + metaBytes + ", got " + meta.length);
      }
      for (int i = 0; i < nnz; i++) {
        int t = termIds.get(i);
        if (t < 0 || t >= vocabSize) {
          throw new IllegalArgumentException("term id " + t + " outside the vocabulary (0.." + (vocabSize - 1) + ")");
        }
        if (impacts.get(i) < 1) {
          throw new IllegalArgumentException("impact " + impacts.get(i) + " < 1 for term id " + t);
        }
      }
    }
  }
}
