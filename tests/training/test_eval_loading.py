"""Loading evaluation sets: ViDoRe v2 names (both spellings), BEIR dirs, the vidore exporter's
DatasetDict, image folders with a queries/qrels JSON, and clear errors for broken sets."""

import json
import shutil
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from vsplade_training.eval.loading import DatasetError, expand, load_eval_dataset  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = DATA / "vidore_samples"
ARXIVQA = DATA / "vidore_arxivqa_mini"


def test_expand_default_is_the_four_vidore_v2_sets():
    assert expand([]) == ["esg_reports_eng_v2", "biomedical_lectures_eng_v2", "economics_reports_eng_v2",
                          "esg_reports_human_labeled_v2"]
    assert expand(["x", "vidore-v2"])[0] == "x" and len(expand(["x", "vidore-v2"])) == 5


@pytest.mark.parametrize("spelling", ["esg_reports_eng_v2", "esg_reports_v2"])
def test_vidore_name_finds_either_spelling_in_data_dir(vidore_root, spelling):
    ds = load_eval_dataset(spelling, vidore_root, hub=False)
    assert ds.name == "esg_reports_eng_v2"  # the official metrics.json key
    spec = json.loads((SAMPLES / "queries_qrels.json").read_text())
    # the French query is filtered by the language column, and its qrels with it
    assert set(ds.queries) == set(spec["queries"]) - {"q_shift"}
    assert ds.dropped_queries == 1 and set(ds.qrels) == set(ds.queries)
    files = sorted(p.name for p in SAMPLES.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
    assert ds.corpus_ids == [str(i) for i in range(len(files))]
    assert ds.qrels["q_ai"] == {str(files.index("ai_sample.jpeg")): 1}
    pages = list(ds.pages(skip={"0"}))
    assert [p.id for p in pages] == ds.corpus_ids[1:]
    assert pages[0].image.mode == "RGB" and pages[0].source == "esg_reports_eng_v2" and pages[0].page_no == 1


def test_readme_spelling_resolves_to_the_eng_dir(vidore_root):
    ds = load_eval_dataset("economics_reports_v2", vidore_root, hub=False)
    assert ds.name == "economics_reports_eng_v2" and len(ds) == 10 and len(ds.queries) == 2


def test_missing_set_without_hub_names_both_spellings(vidore_root):
    with pytest.raises(DatasetError, match="biomedical_lectures_eng_v2, biomedical_lectures_v2"):
        load_eval_dataset("biomedical_lectures_v2", vidore_root, hub=False)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(DatasetError, match="not a ViDoRe v2 name"):
        load_eval_dataset("no_such_set", None, hub=False)


def test_vidore_exporter_datasetdict_by_path():
    ds = load_eval_dataset(str(ARXIVQA), hub=False)
    assert ds.name == "vidore_arxivqa_mini" and ds.corpus_ids == [str(i) for i in range(10)]
    assert ds.qrels == {"q_0": {"0": 1}, "q_1": {"1": 1}}
    img = next(ds.image_at([3]))
    assert img.size[0] > 100 and img.mode == "RGB"


@pytest.mark.parametrize("which", ["folder", "json"])
def test_image_folder_with_queries_qrels_json(which):
    target = SAMPLES if which == "folder" else SAMPLES / "queries_qrels.json"
    ds = load_eval_dataset(str(target), hub=False)
    assert ds.name == "vidore_samples"
    assert "shift_kazakhstan.jpg" in ds.corpus_ids and len(ds) == 7 and len(ds.queries) == 6
    assert ds.qrels["q_shift"] == {"shift_sample.jpeg": 1, "shift_kazakhstan.jpg": 1}
    assert ds.qrels_trec().splitlines()[0] == "q_ai 0 ai_sample.jpeg 1"


def test_missing_image_column_names_table_and_column(tmp_path, sample_tables, beir_writer):
    corpus, queries, qrels = sample_tables
    beir_writer(tmp_path / "bad", {"corpus-id": corpus["corpus-id"]}, queries, qrels, image_feature=False)
    with pytest.raises(DatasetError, match=r"bad .*corpus table has no 'image' or 'image_path' column"):
        load_eval_dataset(str(tmp_path / "bad"), hub=False)


def test_missing_query_text_column(tmp_path, sample_tables, beir_writer):
    corpus, queries, qrels = sample_tables
    del queries["query"]
    beir_writer(tmp_path / "bad", corpus, queries, qrels)
    with pytest.raises(DatasetError, match="queries table has no 'query' or 'text' column"):
        load_eval_dataset(str(tmp_path / "bad"), hub=False)


def test_qrels_pointing_at_unknown_pages_fail(tmp_path, sample_tables, beir_writer):
    corpus, queries, qrels = sample_tables
    qrels["corpus-id"][2] = 999
    beir_writer(tmp_path / "bad", corpus, queries, qrels)
    with pytest.raises(DatasetError, match=r"1 qrels row\(s\) point at pages that are not in the corpus .*'999'"):
        load_eval_dataset(str(tmp_path / "bad"), hub=False)


def test_image_folder_qrels_naming_a_missing_file_fail(tmp_path):
    folder = tmp_path / "imgs"
    shutil.copytree(SAMPLES, folder)
    (folder / "gov_sample.jpeg").unlink()
    with pytest.raises(DatasetError, match="'gov_sample.jpeg'"):
        load_eval_dataset(str(folder), hub=False)


def test_duplicate_page_ids_fail(tmp_path, sample_tables, beir_writer):
    corpus, queries, qrels = sample_tables
    corpus["corpus-id"][1] = corpus["corpus-id"][0]
    beir_writer(tmp_path / "dup", corpus, queries, qrels)
    with pytest.raises(DatasetError, match="repeats page id '0'"):
        load_eval_dataset(str(tmp_path / "dup"), hub=False)


def test_not_a_dataset_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not an evaluation set"):
        load_eval_dataset(str(tmp_path / "empty"), hub=False)


def test_hub_set_unreachable_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(DatasetError, match=r"biomedical_lectures_eng_v2: not found on the Hub \(vidore/biomedical_lectures_eng_v2, "
                                           r"vidore/biomedical_lectures_v2\)"):
        load_eval_dataset("biomedical_lectures_v2", tmp_path, hub=True)
