from __future__ import annotations

from rag_ingest.identity import chunk_ids, content_hash, doc_id, fingerprint


def test_doc_id_is_stable_and_depends_on_source_and_key() -> None:
    assert doc_id("docs", "a/b.md") == doc_id("docs", "a/b.md")
    assert doc_id("docs", "a/b.md") != doc_id("wiki", "a/b.md")
    assert doc_id("docs", "a/b.md") != doc_id("docs", "a/c.md")
    # fields cannot run together: ("ab", "c") is not ("a", "bc")
    assert doc_id("ab", "c") != doc_id("a", "bc")
    assert len(doc_id("docs", "x")) == 32


def test_content_hash_is_sha256_of_text() -> None:
    assert content_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert content_hash("abc") != content_hash("abd")


def test_chunk_ids_survive_an_insertion_earlier_in_the_document() -> None:
    before = chunk_ids("d1", ["intro", "middle", "end"])
    after = chunk_ids("d1", ["intro", "NEW paragraph", "middle", "end"])
    assert before[0] == after[0]
    assert before[1:] == after[2:]
    assert after[1] not in before


def test_identical_texts_in_one_document_get_distinct_ids() -> None:
    ids = chunk_ids("d1", ["same", "other", "same"])
    assert len(set(ids)) == 3
    assert chunk_ids("d2", ["same"])[0] != ids[0]


def test_fingerprint_ignores_key_order() -> None:
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_access_labels_are_part_of_chunk_ids_but_unlabelled_ids_are_unchanged() -> None:
    plain = chunk_ids("doc", ["a", "b"])
    assert chunk_ids("doc", ["a", "b"], []) == plain
    hr = chunk_ids("doc", ["a", "b"], ["hr", "finance"])
    assert set(hr).isdisjoint(plain)
    assert chunk_ids("doc", ["a", "b"], ["finance", "hr"]) == hr  # order does not matter
