package vsplade.lucene;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.IntBuffer;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.standard.StandardAnalyzer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.document.Document;
import org.apache.lucene.document.Field;
import org.apache.lucene.document.TextField;
import org.apache.lucene.index.DirectoryReader;
import org.apache.lucene.index.IndexReader;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.IndexWriterConfig;
import org.apache.lucene.index.LeafReader;
import org.apache.lucene.index.LogDocMergePolicy;
import org.apache.lucene.index.Term;
import org.apache.lucene.search.BooleanClause;
import org.apache.lucene.search.BooleanQuery;
import org.apache.lucene.search.BoostQuery;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.ScoreDoc;
import org.apache.lucene.search.TermQuery;
import org.apache.lucene.search.similarities.BM25Similarity;
import org.apache.lucene.search.similarities.Similarity;
import org.apache.lucene.store.ByteBuffersDirectory;

/**
 * The pages' text layer as a BM25 field next to the impact vectors (hybrid search).
 *
 * <p>Analysis is Lucene's StandardAnalyzer (lower-cased UAX#29 words, no stop words) and
 * scoring BM25 with Pyserini's defaults k1=0.9, b=0.4, the same on every vsplade engine. A
 * query is a bag of words as Pyserini's BagOfWordsQueryGenerator builds it: one SHOULD clause
 * per distinct word, boosted by how often the word occurs in the query.
 */
public final class TextPages {
  public static final float K1 = 0.9f;
  public static final float B = 0.4f;

  private final IndexSearcher searcher;

  /** BM25 search of one reader's text field (its own IndexSearcher with this similarity). */
  public TextPages(IndexReader reader) {
    this.searcher = new IndexSearcher(reader);
    this.searcher.setSimilarity(similarity());
  }

  /**
   * The top k as one array (little-endian int32 doc id, float32 score, hit after hit): one JNI
   * call for the whole list instead of a ScoreDoc wrapper and two field reads a hit.
   */
  public byte[] top(Query query, int k) throws IOException {
    ScoreDoc[] docs = searcher.search(query, k).scoreDocs;
    ByteBuffer out = ByteBuffer.allocate(8 * docs.length).order(ByteOrder.LITTLE_ENDIAN);
    for (ScoreDoc d : docs) {
      out.putInt(d.doc);
      out.putFloat(d.score);
    }
    return out.array();
  }

  public static Similarity similarity() {
    return new BM25Similarity(K1, B);
  }

  public static Analyzer analyzer() {
    return new StandardAnalyzer();
  }

  /** The bag-of-words BM25 query for a text; null when it has no words. */
  public static Query bagOfWords(String field, String text) throws IOException {
    Map<String, Integer> counts = new LinkedHashMap<>();
    try (Analyzer analyzer = analyzer(); TokenStream ts = analyzer.tokenStream(field, text)) {
      CharTermAttribute term = ts.addAttribute(CharTermAttribute.class);
      ts.reset();
      while (ts.incrementToken()) counts.merge(term.toString(), 1, Integer::sum);
      ts.end();
    }
    if (counts.isEmpty()) return null;
    BooleanQuery.Builder b = new BooleanQuery.Builder();
    for (Map.Entry<String, Integer> e : counts.entrySet()) {
      b.add(new BoostQuery(new TermQuery(new Term(field, e.getKey())), e.getValue()), BooleanClause.Occur.SHOULD);
    }
    return b.build();
  }

  /** The words of a text as the field's analyzer makes them, newline-separated (for tests). */
  public static String analyze(String text) throws IOException {
    StringBuilder out = new StringBuilder();
    try (Analyzer analyzer = analyzer(); TokenStream ts = analyzer.tokenStream("text", text)) {
      CharTermAttribute term = ts.addAttribute(CharTermAttribute.class);
      ts.reset();
      while (ts.incrementToken()) out.append(term).append('\n');
      ts.end();
    }
    return out.toString();
  }

  /**
   * A one-segment in-memory index of n documents holding only the text field, doc i = page i
   * (LogDocMergePolicy and one forced merge keep the order), for ParallelLeafReader beside a
   * ChunkReader. Norms are BM25's (the encoded field length).
   */
  static DirectoryReader segment(String field, byte[] texts, IntBuffer lengths) throws IOException {
    ByteBuffersDirectory dir = new ByteBuffersDirectory();
    IndexWriterConfig cfg = new IndexWriterConfig(analyzer());
    cfg.setSimilarity(similarity());
    cfg.setOpenMode(IndexWriterConfig.OpenMode.CREATE);
    cfg.setMergePolicy(new LogDocMergePolicy());
    cfg.setRAMBufferSizeMB(256);
    cfg.setUseCompoundFile(false);
    try (IndexWriter w = new IndexWriter(dir, cfg)) {
      int off = 0;
      for (int i = 0; i < lengths.remaining(); i++) {
        int len = lengths.get(i);
        Document doc = new Document();
        doc.add(new TextField(field, new String(texts, off, len, StandardCharsets.UTF_8), Field.Store.NO));
        off += len;
        w.addDocument(doc);
      }
      w.forceMerge(1);
    }
    return DirectoryReader.open(dir);
  }

  static LeafReader onlyLeaf(DirectoryReader reader) {
    if (reader.leaves().size() != 1) {
      throw new IllegalStateException("text segment has " + reader.leaves().size() + " leaves, expected 1");
    }
    return reader.leaves().get(0).reader();
  }

  static IntBuffer ints(byte[] bytes) {
    return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer();
  }
}
