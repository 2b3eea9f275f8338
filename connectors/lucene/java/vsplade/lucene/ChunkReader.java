package vsplade.lucene;

import java.io.IOException;
import java.nio.IntBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import org.apache.lucene.index.BinaryDocValues;
import org.apache.lucene.index.ByteVectorValues;
import org.apache.lucene.index.FieldInfo;
import org.apache.lucene.index.FieldInfos;
import org.apache.lucene.index.FieldInvertState;
import org.apache.lucene.index.Fields;
import org.apache.lucene.index.FloatVectorValues;
import org.apache.lucene.index.ImpactsEnum;
import org.apache.lucene.index.IndexOptions;
import org.apache.lucene.index.LeafMetaData;
import org.apache.lucene.index.LeafReader;
import org.apache.lucene.index.NumericDocValues;
import org.apache.lucene.index.PointValues;
import org.apache.lucene.index.PostingsEnum;
import org.apache.lucene.index.SlowImpactsEnum;
import org.apache.lucene.index.SortedDocValues;
import org.apache.lucene.index.SortedNumericDocValues;
import org.apache.lucene.index.SortedSetDocValues;
import org.apache.lucene.index.StoredFieldVisitor;
import org.apache.lucene.index.StoredFields;
import org.apache.lucene.index.TermVectors;
import org.apache.lucene.index.Terms;
import org.apache.lucene.index.TermsEnum;
import org.apache.lucene.index.BaseTermsEnum;
import org.apache.lucene.search.DocIdSetIterator;
import org.apache.lucene.search.KnnCollector;
import org.apache.lucene.search.similarities.Similarity;
import org.apache.lucene.util.Bits;
import org.apache.lucene.util.BytesRef;
import org.apache.lucene.util.Version;

/**
 * One chunk of pages seen as a Lucene segment reader, so {@code IndexWriter.addIndexes} can
 * write it with the codec's merge path instead of inverting documents token by token.
 *
 * <p>The reader exposes exactly what indexing the page documents would produce: the
 * {@code contents} postings (term = term name bytes, freq = impact, docs ascending), the
 * {@code id} field as a one-posting term per page plus BINARY doc values, the stored
 * {@code id} and {@code raw} strings, and {@code contents} norms from the similarity. The
 * field infos come from a real one-document index with the same fields (see ImpactIndexer),
 * so the segment's schema is Lucene's own.
 */
final class ChunkReader extends LeafReader {
  private final FieldInfos fieldInfos;
  private final FieldInfo idInfo;
  private final FieldInfo rawInfo;
  private final String contentsField;
  private final int numDocs;
  private final BytesRef[] ids;
  private final String[] idStrings;
  private final String[] raws;
  private final long[] norms;
  private final ContentsPostings contents;
  private final IdPostings idTerms;

  ChunkReader(
      FieldInfos fieldInfos,
      String idField,
      String rawField,
      String contentsField,
      Similarity similarity,
      BytesRef[] vocabulary,
      int[] termsInByteOrder,
      byte[] meta,
      IntBuffer metaLengths,
      IntBuffer counts,
      IntBuffer termIds,
      IntBuffer impacts) {
    this.fieldInfos = fieldInfos;
    this.idInfo = fieldInfos.fieldInfo(idField);
    this.rawInfo = fieldInfos.fieldInfo(rawField);
    this.contentsField = contentsField;
    this.numDocs = counts.remaining();
    ids = new BytesRef[numDocs];
    idStrings = new String[numDocs];
    raws = new String[numDocs];
    norms = new long[numDocs];
    int metaPos = 0;
    int pos = 0;
    FieldInfo contentsInfo = fieldInfos.fieldInfo(contentsField);
    for (int d = 0; d < numDocs; d++) {
      int idLen = metaLengths.get(2 * d);
      int rawLen = metaLengths.get(2 * d + 1);
      ids[d] = new BytesRef(meta, metaPos, idLen);
      idStrings[d] = new String(meta, metaPos, idLen, StandardCharsets.UTF_8);
      raws[d] = new String(meta, metaPos + idLen, rawLen, StandardCharsets.UTF_8);
      metaPos += idLen + rawLen;
      int n = counts.get(d);
      int length = 0;
      int maxFreq = 0;
      for (int i = pos; i < pos + n; i++) {
        int f = impacts.get(i);
        length = Math.addExact(length, f);
        maxFreq = Math.max(maxFreq, f);
      }
      // what the indexing chain hands the similarity after inverting the page (a page with no
      // tokens gets norm 0, as IndexingChain gives it)
      norms[d] = n == 0 ? 0 : similarity.computeNorm(new FieldInvertState(
          Version.LATEST.major, contentsField, contentsInfo.getIndexOptions(), n - 1, length, 0, 0, maxFreq, n));
      pos += n;
    }
    contents = new ContentsPostings(vocabulary, termsInByteOrder, counts, termIds, impacts);
    idTerms = new IdPostings(ids);
  }

  // -- postings -------------------------------------------------------------------------------

  /** Term -> (docs, freqs) of the chunk, by a counting sort over the term ids. */
  private static final class ContentsPostings {
    final BytesRef[] vocabulary;
    final int[] activeTerms; // term ids present in the chunk, in BytesRef order
    final int[] start; // by term id: first slot of its postings
    final int[] docFreq; // by term id
    final int[] docs;
    final int[] freqs;
    final int docCount;
    final long sumTotalTermFreq;

    ContentsPostings(BytesRef[] vocabulary, int[] termsInByteOrder, IntBuffer counts, IntBuffer termIds,
        IntBuffer impacts) {
      this.vocabulary = vocabulary;
      int nnz = termIds.remaining();
      docFreq = new int[vocabulary.length];
      for (int i = 0; i < nnz; i++) docFreq[termIds.get(i)]++;
      start = new int[vocabulary.length];
      int active = 0;
      int slot = 0;
      for (int t : termsInByteOrder) {
        if (docFreq[t] > 0) {
          start[t] = slot;
          slot += docFreq[t];
          active++;
        }
      }
      activeTerms = new int[active];
      int a = 0;
      for (int t : termsInByteOrder) if (docFreq[t] > 0) activeTerms[a++] = t;
      docs = new int[nnz];
      freqs = new int[nnz];
      int[] fill = start.clone();
      int pos = 0;
      int withTerms = 0;
      long total = 0;
      for (int d = 0; d < counts.remaining(); d++) {
        int n = counts.get(d);
        if (n > 0) withTerms++;
        for (int i = pos; i < pos + n; i++) {
          int t = termIds.get(i);
          int s = fill[t]++;
          docs[s] = d; // docs are visited in order: each term's postings come out ascending
          freqs[s] = impacts.get(i);
          total += freqs[s];
        }
        pos += n;
      }
      docCount = withTerms;
      sumTotalTermFreq = total;
    }
  }

  /** Page ids as terms of the id field: one posting each, in BytesRef order. */
  private static final class IdPostings {
    final BytesRef[] sortedTerms;
    final int[] start;
    final int[] docs;

    IdPostings(BytesRef[] ids) {
      Integer[] order = new Integer[ids.length];
      for (int i = 0; i < ids.length; i++) order[i] = i;
      Arrays.sort(order, (x, y) -> {
        int c = ids[x].compareTo(ids[y]);
        return c != 0 ? c : Integer.compare(x, y);
      });
      docs = new int[ids.length];
      int[] starts = new int[ids.length + 1];
      BytesRef[] terms = new BytesRef[ids.length];
      int unique = 0;
      for (int i = 0; i < ids.length; i++) {
        docs[i] = order[i];
        if (i == 0 || !ids[order[i]].equals(ids[order[i - 1]])) {
          terms[unique] = ids[order[i]];
          starts[unique++] = i;
        }
      }
      starts[unique] = ids.length;
      sortedTerms = Arrays.copyOf(terms, unique);
      start = Arrays.copyOf(starts, unique + 1);
    }
  }

  private final class ChunkTerms extends Terms {
    private final boolean isContents;

    ChunkTerms(boolean isContents) {
      this.isContents = isContents;
    }

    @Override
    public TermsEnum iterator() {
      return new ChunkTermsEnum(isContents);
    }

    @Override
    public long size() {
      return isContents ? contents.activeTerms.length : idTerms.sortedTerms.length;
    }

    @Override
    public long getSumTotalTermFreq() {
      return isContents ? contents.sumTotalTermFreq : numDocs;
    }

    @Override
    public long getSumDocFreq() {
      return isContents ? contents.docs.length : numDocs;
    }

    @Override
    public int getDocCount() {
      return isContents ? contents.docCount : numDocs;
    }

    @Override
    public boolean hasFreqs() {
      return isContents;
    }

    @Override
    public boolean hasOffsets() {
      return false;
    }

    @Override
    public boolean hasPositions() {
      return false;
    }

    @Override
    public boolean hasPayloads() {
      return false;
    }
  }

  private final class ChunkTermsEnum extends BaseTermsEnum {
    private final boolean isContents;
    private final int size;
    private int ord = -1;

    ChunkTermsEnum(boolean isContents) {
      this.isContents = isContents;
      this.size = isContents ? contents.activeTerms.length : idTerms.sortedTerms.length;
    }

    private BytesRef termAt(int o) {
      return isContents ? contents.vocabulary[contents.activeTerms[o]] : idTerms.sortedTerms[o];
    }

    @Override
    public BytesRef next() {
      if (ord + 1 >= size) {
        ord = size;
        return null;
      }
      return termAt(++ord);
    }

    @Override
    public SeekStatus seekCeil(BytesRef text) {
      int lo = 0;
      int hi = size - 1;
      while (lo <= hi) {
        int mid = (lo + hi) >>> 1;
        int c = termAt(mid).compareTo(text);
        if (c < 0) lo = mid + 1;
        else if (c > 0) hi = mid - 1;
        else {
          ord = mid;
          return SeekStatus.FOUND;
        }
      }
      ord = lo;
      return lo >= size ? SeekStatus.END : SeekStatus.NOT_FOUND;
    }

    @Override
    public void seekExact(long o) {
      ord = (int) o;
    }

    @Override
    public BytesRef term() {
      return termAt(ord);
    }

    @Override
    public long ord() {
      return ord;
    }

    @Override
    public int docFreq() {
      if (isContents) return contents.docFreq[contents.activeTerms[ord]];
      return idTerms.start[ord + 1] - idTerms.start[ord];
    }

    @Override
    public long totalTermFreq() {
      if (!isContents) return docFreq();
      int t = contents.activeTerms[ord];
      long total = 0;
      for (int i = contents.start[t]; i < contents.start[t] + contents.docFreq[t]; i++) total += contents.freqs[i];
      return total;
    }

    @Override
    public PostingsEnum postings(PostingsEnum reuse, int flags) {
      ArrayPostings p = reuse instanceof ArrayPostings ? (ArrayPostings) reuse : new ArrayPostings();
      if (isContents) {
        int t = contents.activeTerms[ord];
        p.reset(contents.docs, contents.freqs, contents.start[t], contents.start[t] + contents.docFreq[t]);
      } else {
        p.reset(idTerms.docs, null, idTerms.start[ord], idTerms.start[ord + 1]);
      }
      return p;
    }

    @Override
    public ImpactsEnum impacts(int flags) {
      return new SlowImpactsEnum(postings(null, flags));
    }
  }

  /** Postings of one term: a slice of the chunk's doc and freq arrays. */
  private static final class ArrayPostings extends PostingsEnum {
    private int[] docs;
    private int[] freqs;
    private int pos;
    private int end;
    private int doc = -1;

    void reset(int[] docs, int[] freqs, int start, int end) {
      this.docs = docs;
      this.freqs = freqs;
      this.pos = start - 1;
      this.end = end;
      this.doc = -1;
    }

    @Override
    public int freq() {
      return freqs == null ? 1 : freqs[pos];
    }

    @Override
    public int nextPosition() {
      return -1;
    }

    @Override
    public int startOffset() {
      return -1;
    }

    @Override
    public int endOffset() {
      return -1;
    }

    @Override
    public BytesRef getPayload() {
      return null;
    }

    @Override
    public int docID() {
      return doc;
    }

    @Override
    public int nextDoc() {
      return doc = ++pos < end ? docs[pos] : NO_MORE_DOCS;
    }

    @Override
    public int advance(int target) throws IOException {
      return slowAdvance(target);
    }

    @Override
    public long cost() {
      return end - pos;
    }
  }

  // -- per-document values --------------------------------------------------------------------

  /** Iterates every doc of the chunk (all pages have ids; norms exist for every page). */
  private final class EveryDoc {
    int doc = -1;

    public int docID() {
      return doc;
    }

    public int nextDoc() {
      return doc = doc + 1 < numDocs ? doc + 1 : DocIdSetIterator.NO_MORE_DOCS;
    }

    public int advance(int target) {
      return doc = target < numDocs ? target : DocIdSetIterator.NO_MORE_DOCS;
    }

    public boolean advanceExact(int target) {
      doc = target;
      return true;
    }

    public long cost() {
      return numDocs;
    }
  }

  @Override
  public Terms terms(String field) {
    if (field.equals(contentsField)) return new ChunkTerms(true);
    if (field.equals(idInfo.name)) return new ChunkTerms(false);
    return null;
  }

  @Override
  public NumericDocValues getNormValues(String field) {
    if (!field.equals(contentsField)) return null;
    return new NumericDocValues() {
      private final EveryDoc it = new EveryDoc();

      @Override
      public long longValue() {
        return norms[it.doc];
      }

      @Override
      public boolean advanceExact(int target) {
        return it.advanceExact(target);
      }

      @Override
      public int docID() {
        return it.docID();
      }

      @Override
      public int nextDoc() {
        return it.nextDoc();
      }

      @Override
      public int advance(int target) {
        return it.advance(target);
      }

      @Override
      public long cost() {
        return it.cost();
      }
    };
  }

  @Override
  public BinaryDocValues getBinaryDocValues(String field) {
    if (!field.equals(idInfo.name)) return null;
    return new BinaryDocValues() {
      private final EveryDoc it = new EveryDoc();

      @Override
      public BytesRef binaryValue() {
        return ids[it.doc];
      }

      @Override
      public boolean advanceExact(int target) {
        return it.advanceExact(target);
      }

      @Override
      public int docID() {
        return it.docID();
      }

      @Override
      public int nextDoc() {
        return it.nextDoc();
      }

      @Override
      public int advance(int target) {
        return it.advance(target);
      }

      @Override
      public long cost() {
        return it.cost();
      }
    };
  }

  @Override
  public StoredFields storedFields() {
    return new StoredFields() {
      @Override
      public void document(int docID, StoredFieldVisitor visitor) throws IOException {
        ChunkReader.this.document(docID, visitor);
      }
    };
  }

  @Override
  @SuppressWarnings("deprecation") // still abstract in Lucene 9; storedFields() delegates here
  public void document(int docID, StoredFieldVisitor visitor) throws IOException {
    // same order as the page Document adds them: id, then raw
    if (visitor.needsField(idInfo) == StoredFieldVisitor.Status.YES) visitor.stringField(idInfo, idStrings[docID]);
    if (visitor.needsField(rawInfo) == StoredFieldVisitor.Status.YES) visitor.stringField(rawInfo, raws[docID]);
  }

  // -- the rest of a segment reader: nothing of it exists in a chunk ---------------------------

  @Override
  public CacheHelper getCoreCacheHelper() {
    return null;
  }

  @Override
  public CacheHelper getReaderCacheHelper() {
    return null;
  }

  @Override
  public NumericDocValues getNumericDocValues(String field) {
    return null;
  }

  @Override
  public SortedDocValues getSortedDocValues(String field) {
    return null;
  }

  @Override
  public SortedNumericDocValues getSortedNumericDocValues(String field) {
    return null;
  }

  @Override
  public SortedSetDocValues getSortedSetDocValues(String field) {
    return null;
  }

  @Override
  public FloatVectorValues getFloatVectorValues(String field) {
    return null;
  }

  @Override
  public ByteVectorValues getByteVectorValues(String field) {
    return null;
  }

  @Override
  public void searchNearestVectors(String field, float[] target, KnnCollector knnCollector, Bits acceptDocs) {}

  @Override
  public void searchNearestVectors(String field, byte[] target, KnnCollector knnCollector, Bits acceptDocs) {}

  @Override
  public FieldInfos getFieldInfos() {
    return fieldInfos;
  }

  @Override
  public Bits getLiveDocs() {
    return null;
  }

  @Override
  public PointValues getPointValues(String field) {
    return null;
  }

  @Override
  public void checkIntegrity() {}

  @Override
  public LeafMetaData getMetaData() {
    return new LeafMetaData(Version.LATEST.major, Version.LATEST, null, false);
  }

  @Override
  @SuppressWarnings("deprecation") // still abstract in Lucene 9
  public Fields getTermVectors(int docID) {
    return null;
  }

  @Override
  public TermVectors termVectors() {
    return TermVectors.EMPTY;
  }

  @Override
  public int numDocs() {
    return numDocs;
  }

  @Override
  public int maxDoc() {
    return numDocs;
  }

  @Override
  protected void doClose() {}
}
