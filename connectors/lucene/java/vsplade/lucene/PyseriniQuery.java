package vsplade.lucene;

import java.util.HashMap;
import java.util.Map;

import io.anserini.search.query.BagOfWordsQueryGenerator;
import org.apache.lucene.search.Query;

/**
 * The Lucene query Anserini's {@code SimpleImpactSearcher.search(Map<String, Integer>, int)}
 * ranks with, built in one call from Python (vsplade_lucene.pyserini_compat): the same
 * {@code BagOfWordsQueryGenerator} over the same {@code Map<String, Float>} its private
 * {@code intToFloat} makes of the integer map, so the same boosts and the same ranking. From
 * Python a map costs one JNI call (and a boxed integer) per term; two arrays cross at once.
 */
public final class PyseriniQuery {
  private PyseriniQuery() {}

  public static Query build(String field, String[] terms, int[] impacts) {
    if (terms.length != impacts.length) {
      throw new IllegalArgumentException(terms.length + " terms but " + impacts.length + " impacts");
    }
    // Pyserini's HashMap<String, Integer> (filled in the query's order), then Anserini's
    // intToFloat step by step: the float map iterates in the same order, so the query's clauses
    // (and any float summation order that follows them) are the ones Anserini's path builds
    Map<String, Integer> ints = new HashMap<>();
    for (int i = 0; i < terms.length; i++) {
      ints.put(terms[i], impacts[i]);
    }
    Map<String, Float> boosts = new HashMap<>();
    for (Map.Entry<String, Integer> e : ints.entrySet()) {
      boosts.put(e.getKey(), e.getValue().floatValue());
    }
    return new BagOfWordsQueryGenerator().buildQuery(field, boosts);
  }
}
