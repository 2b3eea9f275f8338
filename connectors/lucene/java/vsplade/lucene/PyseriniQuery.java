package vsplade.lucene;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import io.anserini.search.ScoredDoc;
import io.anserini.search.SimpleImpactSearcher;
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
    return build(field, terms, impacts, 0, terms.length);
  }

  private static Query build(String field, String[] terms, int[] impacts, int from, int to) {
    // Pyserini's HashMap<String, Integer> (filled in the query's order), then Anserini's
    // intToFloat step by step: the float map iterates in the same order, so the query's clauses
    // (and any float summation order that follows them) are the ones Anserini's path builds
    Map<String, Integer> ints = new HashMap<>();
    for (int i = from; i < to; i++) {
      ints.put(terms[i], impacts[i]);
    }
    Map<String, Float> boosts = new HashMap<>();
    for (Map.Entry<String, Integer> e : ints.entrySet()) {
      boosts.put(e.getKey(), e.getValue().floatValue());
    }
    return new BagOfWordsQueryGenerator().buildQuery(field, boosts);
  }

  // SimpleImpactSearcher._search(Query, String, int): protected, what its search(Map, int) calls
  // after joining the query text; Java code outside its package reaches it by reflection (JNI
  // from Python needs none)
  private static volatile Method rankingStep;

  private static Method rankingStep() throws NoSuchMethodException {
    Method m = rankingStep;
    if (m == null) {
      m = SimpleImpactSearcher.class.getDeclaredMethod("_search", Query.class, String.class, int.class);
      m.setAccessible(true);
      rankingStep = m;
    }
    return m;
  }

  /**
   * Anserini's {@code batch_search(List<Map>, List<String>, int, int)} without the query text:
   * the same queries as {@link #build} ranked by {@code _search} with an empty text, on a
   * work-stealing pool of {@code threads} as Anserini's method runs them. The queries cross as
   * flat arrays: query i has {@code lengths[i]} terms, the next ones in {@code terms} /
   * {@code impacts}. The searcher must have searched once (its IndexSearcher is made by the first
   * search; Python's pyserini_searcher does that when it opens), as Anserini's method ensures
   * before its threads start. A failed query fails the call, naming it.
   */
  public static Map<String, ScoredDoc[]> batchSearch(SimpleImpactSearcher searcher, String field, String[] qids,
                                                     int[] lengths, String[] terms, int[] impacts, int k, int threads)
      throws NoSuchMethodException, InterruptedException {
    if (qids.length != lengths.length) {
      throw new IllegalArgumentException(qids.length + " query ids but " + lengths.length + " queries");
    }
    if (terms.length != impacts.length) {
      throw new IllegalArgumentException(terms.length + " terms but " + impacts.length + " impacts");
    }
    Method step = rankingStep();
    Map<String, ScoredDoc[]> results = new ConcurrentHashMap<>();
    List<Callable<Void>> tasks = new ArrayList<>(qids.length);
    int from = 0;
    for (int i = 0; i < qids.length; i++) {
      int to = from + lengths[i];
      if (lengths[i] < 0 || to > terms.length) {
        throw new IllegalArgumentException("query " + qids[i] + ": " + lengths[i] + " terms past the " + terms.length + " given");
      }
      String qid = qids[i];
      Query query = build(field, terms, impacts, from, to);
      tasks.add(() -> {
        try {
          results.put(qid, (ScoredDoc[]) step.invoke(searcher, query, "", k));
        } catch (InvocationTargetException e) {
          throw new RuntimeException("query " + qid + ": " + e.getCause(), e.getCause());
        }
        return null;
      });
      from = to;
    }
    if (from != terms.length) {
      throw new IllegalArgumentException((terms.length - from) + " terms left after the " + qids.length + " queries");
    }
    ExecutorService pool = Executors.newWorkStealingPool(Math.max(1, threads));
    try {
      for (Future<Void> f : pool.invokeAll(tasks)) {
        try {
          f.get();
        } catch (ExecutionException e) {
          Throwable cause = e.getCause();
          throw cause instanceof RuntimeException ? (RuntimeException) cause : new RuntimeException(cause);
        }
      }
    } finally {
      pool.shutdownNow();
    }
    return results;
  }
}
