"""The integer reference runs a big batch in chunks of bounded working memory, with the
same results as one whole-batch run: `edgeq run` on the reference target and the `--check`
paths use it (an ImageNet-size batch used to hold every sample's int64 temporaries at once).
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from edgeq.reference.interpreter import run_reference, run_reference_streamed, sample_bytes

from .test_codegen_host import qgraph_ops, rand_feeds


def _peak(fn) -> int:
    """Bytes allocated at the peak while fn runs (numpy reports its buffers to tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def graph():
    return qgraph_ops()


def test_chunks_give_the_whole_batch_result(graph):
    feeds = rand_feeds(graph, 203)  # not a multiple of the chunk
    want = run_reference(graph, feeds)
    got = run_reference_streamed(graph, feeds, chunk_bytes=sample_bytes(graph) * 16, progress=True)
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype and np.array_equal(got[name], want[name]), name


def test_peak_memory_is_bounded_by_the_chunk_not_the_batch(graph):
    chunk_bytes = sample_bytes(graph) * 32  # 32 samples per chunk
    small, big = rand_feeds(graph, 256), rand_feeds(graph, 2048)
    out_bytes = sum(graph.tensors[o].size for o in graph.outputs)  # int8 outputs per sample

    streamed_small = _peak(lambda: run_reference_streamed(graph, small, chunk_bytes=chunk_bytes, progress=False))
    streamed_big = _peak(lambda: run_reference_streamed(graph, big, chunk_bytes=chunk_bytes, progress=False))
    whole_big = _peak(lambda: run_reference(graph, big))
    # 8x the samples: the same per-chunk peak, plus only the (int8) outputs it returns
    # (tracemalloc's peak varies by ~200 KB between runs of the same chunk)
    assert streamed_big <= streamed_small * 1.3 + 2048 * out_bytes, (streamed_small, streamed_big)
    # the estimate bounds what a chunk really allocates (plus a fixed ~10 KB of bookkeeping)
    assert streamed_small <= chunk_bytes + 64 * 1024, (streamed_small, chunk_bytes)
    # and the whole-batch run, the thing being fixed, really grows with the batch
    assert whole_big > 20 * streamed_big, (whole_big, streamed_big)


def test_a_small_batch_is_one_run(graph, monkeypatch):
    import edgeq.reference.interpreter as interp
    calls = []
    monkeypatch.setattr(interp, "run_reference", lambda g, f, o=None: calls.append(len(next(iter(f.values())))) or {})
    run_reference_streamed(graph, rand_feeds(graph, 5), chunk_bytes=sample_bytes(graph) * 8)
    assert calls == [5]


def test_edgeq_run_on_the_reference_streams(tmp_path, monkeypatch, capsys):
    """`edgeq run --check` on a reference build, with a chunk of 10 samples: outputs equal
    the whole-batch reference (and the check against it passes)."""
    import edgeq.reference.interpreter as interp
    from edgeq.cli import main
    from edgeq.graphio.onnx_io import save_graph
    from edgeq.report.report import base_report, write_report
    graph = qgraph_ops()
    build = tmp_path / "build"
    build.mkdir()
    save_graph(graph, build / "model.q.onnx")
    write_report(base_report(graph, "reference"), build / "report.json")
    feeds = rand_feeds(graph, 57)
    np.save(tmp_path / "x.npy", next(iter(feeds.values())))
    monkeypatch.setattr(interp, "REFERENCE_CHUNK_BYTES", sample_bytes(graph) * 10)
    chunks = []
    real = interp.run_reference
    monkeypatch.setattr(interp, "run_reference", lambda g, f, o=None: chunks.append(len(next(iter(f.values())))) or real(g, f, o))
    main(["run", str(build), "--input", str(tmp_path / "x.npy"), "--raw", "--check",
          "--output", str(tmp_path / "y.npy")])
    assert "bit-identical" in capsys.readouterr().out
    assert chunks and max(chunks) <= 10 and sum(chunks) == 2 * 57  # the run, then the check
    assert np.array_equal(np.load(tmp_path / "y.npy"), real(graph, feeds)[graph.outputs[0]])
