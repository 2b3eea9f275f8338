package vsplade.lucene;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.IntBuffer;

import org.apache.lucene.index.LeafReaderContext;
import org.apache.lucene.search.Collector;
import org.apache.lucene.search.IndexSearcher;
import org.apache.lucene.search.LeafCollector;
import org.apache.lucene.search.Query;
import org.apache.lucene.search.Scorable;
import org.apache.lucene.search.ScoreMode;

/**
 * Search grouped by document (file), inside Lucene, exactly: one collector visits every matching
 * page once, keeps each group's best {@code perGroup} pages, and the best {@code k} groups by their
 * best page come back (a group's score is its best page's score, ties broken by doc id as Lucene
 * breaks them). No over-fetch of a page top-k that could miss a file. The group of each doc id
 * comes from Python (the source code of each page, from the same reader's page metadata), as
 * little-endian int32s; -1: no group (deleted).
 *
 * <p>Result, one int[]: for each group in rank order {@code group, n, doc_1, floatBits(score_1),
 * ..., doc_n, floatBits(score_n)}.
 */
public final class GroupPages {
  private GroupPages() {}

  public static int[] search(IndexSearcher searcher, Query query, byte[] groupCodes, int numGroups, int k,
      int perGroup) throws IOException {
    IntBuffer codes = ByteBuffer.wrap(groupCodes).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer();
    float[][] scores = new float[numGroups][];
    int[][] docs = new int[numGroups][];
    int[] filled = new int[numGroups];
    searcher.search(query, new Collector() {
      @Override
      public LeafCollector getLeafCollector(LeafReaderContext context) {
        final int base = context.docBase;
        return new LeafCollector() {
          private Scorable scorer;

          @Override
          public void setScorer(Scorable s) {
            scorer = s;
          }

          @Override
          public void collect(int doc) throws IOException {
            int global = base + doc;
            int g = global < codes.limit() ? codes.get(global) : -1;
            if (g < 0 || g >= numGroups) return;
            float score = scorer.score();
            if (scores[g] == null) {
              scores[g] = new float[perGroup];
              docs[g] = new int[perGroup];
            }
            float[] s = scores[g];
            int[] d = docs[g];
            int n = filled[g];
            // docs arrive in increasing id order: a tie keeps the earlier doc first
            if (n == perGroup && score <= s[n - 1]) return;
            int at = n == perGroup ? n - 1 : n;
            while (at > 0 && s[at - 1] < score) {
              s[at] = s[at - 1];
              d[at] = d[at - 1];
              at--;
            }
            s[at] = score;
            d[at] = global;
            if (n < perGroup) filled[g] = n + 1;
          }
        };
      }

      @Override
      public ScoreMode scoreMode() {
        return ScoreMode.COMPLETE;
      }
    });
    // the k best groups: by best score desc, then best doc asc (a partial selection would do;
    // groups are files, a few thousand at most per query)
    Integer[] order = new Integer[numGroups];
    int live = 0;
    for (int g = 0; g < numGroups; g++) if (filled[g] > 0) order[live++] = g;
    java.util.Arrays.sort(order, 0, live, (a, b) -> {
      int c = Float.compare(scores[b][0], scores[a][0]);
      return c != 0 ? c : Integer.compare(docs[a][0], docs[b][0]);
    });
    int take = Math.min(k, live);
    int size = 0;
    for (int i = 0; i < take; i++) size += 2 + 2 * filled[order[i]];
    int[] out = new int[size];
    int p = 0;
    for (int i = 0; i < take; i++) {
      int g = order[i];
      out[p++] = g;
      out[p++] = filled[g];
      for (int j = 0; j < filled[g]; j++) {
        out[p++] = docs[g][j];
        out[p++] = Float.floatToIntBits(scores[g][j]);
      }
    }
    return out;
  }
}
