package vsplade.lucene;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.IntBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Set;

import org.apache.lucene.document.Document;
import org.apache.lucene.index.IndexReader;
import org.apache.lucene.index.IndexWriter;
import org.apache.lucene.index.LeafReader;
import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.index.StoredFields;
import org.apache.lucene.index.Term;
import org.apache.lucene.search.ConstantScoreScorer;
import org.apache.lucene.search.ConstantScoreWeight;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.QueryVisitor;
import org.apache.lucene.search.ScoreMode;
import org.apache.lucene.search.Scorer;
import org.apache.lucene.search.Weight;
import org.apache.lucene.util.BitSetIterator;
import org.apache.lucene.util.Bits;
import org.apache.lucene.util.FixedBitSet;

/**
 * Page metadata and page sets in one JNI call each (a call per document from Python would cost
 * seconds on a large index).
 *
 * <p>{@link #raws}: the stored {@code raw} JSON of every doc id of a reader, one line per doc id
 * ('\n' separated, an empty line for a deleted doc), so a searcher maps doc ids to pages from
 * the very commit it searches, whatever merges renumbered. {@link #deleteIds}: deleteDocuments on
 * the id term for a batch of ids. {@link #filter}: a doc-id set as a query, for a FILTER clause
 * (vsplade's PageFilter, evaluated in Python over the pages of the same reader).
 */
public final class IndexPages {
  private IndexPages() {}

  public static byte[] raws(IndexReader reader, String rawField) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream(Math.max(16, reader.maxDoc() * 96));
    Set<String> fields = Set.of(rawField);
    for (LeafReaderContext ctx : reader.leaves()) {
      LeafReader leaf = ctx.reader();
      Bits live = leaf.getLiveDocs();
      StoredFields stored = leaf.storedFields();
      for (int d = 0; d < leaf.maxDoc(); d++) {
        if (live == null || live.get(d)) {
          Document doc = stored.document(d, fields);
          String raw = doc.get(rawField);
          if (raw != null) out.write(raw.getBytes(StandardCharsets.UTF_8));
        }
        out.write('\n');
      }
    }
    return out.toByteArray();
  }

  /** Deletes the documents whose {@code field} term is one of the ids (UTF-8, int32 LE lengths). */
  public static void deleteIds(IndexWriter writer, String field, byte[] ids, byte[] lengths) throws IOException {
    IntBuffer lens = ByteBuffer.wrap(lengths).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer();
    Term[] terms = new Term[lens.remaining()];
    int off = 0;
    for (int i = 0; i < terms.length; i++) {
      int len = lens.get(i);
      terms[i] = new Term(field, new String(ids, off, len, StandardCharsets.UTF_8));
      off += len;
    }
    if (off != ids.length) throw new IllegalArgumentException("id lengths add up to " + off + ", got " + ids.length);
    if (terms.length > 0) writer.deleteDocuments(terms);
  }

  /** The doc ids whose bit is set (little-endian bit order, bit d of byte d/8) as a query. */
  public static Query filter(byte[] packedBits, int maxDoc) {
    FixedBitSet bits = new FixedBitSet(maxDoc);
    for (int d = 0; d < maxDoc; d++) {
      if ((packedBits[d >> 3] & (1 << (d & 7))) != 0) bits.set(d);
    }
    return new DocSetQuery(bits);
  }

  static final class DocSetQuery extends Query {
    private final FixedBitSet bits; // top-level doc ids of the reader it was built for

    DocSetQuery(FixedBitSet bits) {
      this.bits = bits;
    }

    @Override
    public Weight createWeight(IndexSearcher searcher, ScoreMode scoreMode, float boost) {
      return new ConstantScoreWeight(this, boost) {
        @Override
        public Scorer scorer(LeafReaderContext ctx) {
          int base = ctx.docBase;
          int max = ctx.reader().maxDoc();
          FixedBitSet leaf = new FixedBitSet(max);
          int n = 0;
          if (base < bits.length()) {
            for (int d = bits.nextSetBit(base); d != BitSetIterator.NO_MORE_DOCS && d < base + max;
                d = d + 1 < bits.length() ? bits.nextSetBit(d + 1) : BitSetIterator.NO_MORE_DOCS) {
              leaf.set(d - base);
              n++;
            }
          }
          if (n == 0) return null;
          return new ConstantScoreScorer(this, score(), scoreMode, new BitSetIterator(leaf, n));
        }

        @Override
        public boolean isCacheable(LeafReaderContext ctx) {
          return false;
        }
      };
    }

    @Override
    public String toString(String field) {
      return "DocSetQuery(" + bits.cardinality() + " docs)";
    }

    @Override
    public void visit(QueryVisitor visitor) {
      visitor.visitLeaf(this);
    }

    @Override
    public boolean equals(Object other) {
      return this == other;
    }

    @Override
    public int hashCode() {
      return System.identityHashCode(this);
    }
  }
}
