# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The split-brain rule of flt_split (pure): what counts as two nodes provably accepting writes at once."""

from __future__ import annotations

from flt_split import Sample, Span, parse_samples, split_instants, within, writable_spans, writers


def run(node: str, start: float, count: int, state: str = "W", epoch: int = 1, step: float = 0.02,
        length: float = 0.005) -> list[Sample]:
    """`count` samples of `node` every `step` seconds from `start`, each `length` long."""
    return [Sample(node, start + i * step, start + i * step + length, epoch, state) for i in range(count)]


def test_a_run_of_writes_on_one_connection_is_a_span_from_the_first_end_to_the_last_start() -> None:
    spans, lone = writable_spans(run("a", 10.0, 5))
    assert spans == {"a": [Span("a", 10.005, 10.08)]}
    assert lone == {"a": []}


def test_a_reconnect_or_a_refused_sample_ends_the_span() -> None:
    samples = run("a", 0.0, 3) + run("a", 0.06, 3, epoch=2)
    spans = writable_spans(samples)[0]
    assert spans["a"] == [Span("a", 0.005, 0.04), Span("a", 0.065, 0.1)]
    samples = run("a", 0.0, 3) + run("a", 0.06, 1, state="R") + run("a", 0.08, 3)
    spans = writable_spans(samples)[0]
    assert spans["a"] == [Span("a", 0.005, 0.04), Span("a", 0.085, 0.12)]


def test_a_lone_write_is_a_point_not_a_span() -> None:
    samples = run("a", 0.0, 1) + run("a", 0.02, 1, state="E") + run("a", 0.04, 1, epoch=2)
    spans, lone = writable_spans(samples)
    assert spans["a"] == []
    assert [s.start for s in lone["a"]] == [0.0, 0.04]


def test_a_clean_handover_is_no_split() -> None:
    # a writes until 1.0 then its connection fails; b refuses (read-only) until 1.2, then writes.
    samples = (run("a", 0.0, 50) + run("a", 1.0, 5, state="E")
               + run("b", 0.0, 60, state="R") + run("b", 1.2, 50, epoch=1))
    assert split_instants(samples) == []


def test_overlapping_spans_are_one_split_instant() -> None:
    samples = run("a", 0.0, 100) + run("b", 1.0, 100)  # a writable [0.005, 1.98], b [1.005, 2.98]
    splits = split_instants(samples)
    assert len(splits) == 1
    assert (splits[0].a, splits[0].b) == ("a", "b")
    assert abs(splits[0].start - 1.005) < 1e-9 and abs(splits[0].end - 1.98) < 1e-9


def test_a_lone_write_inside_another_nodes_span_is_a_split() -> None:
    samples = run("a", 0.0, 100) + run("b", 0.5, 1, epoch=7)
    splits = split_instants(samples)
    assert len(splits) == 1 and splits[0].a == "a" and splits[0].b == "b"


def test_overlapping_lone_samples_prove_nothing() -> None:
    # Each write may have happened at a different instant of its interval: not counted.
    samples = [Sample("a", 0.0, 1.0, 1, "W"), Sample("b", 0.2, 0.8, 1, "W")]
    assert split_instants(samples) == []


def test_a_lone_write_sticking_out_of_a_span_is_not_a_split() -> None:
    samples = run("a", 0.0, 10) + [Sample("b", 0.1, 0.5, 1, "W")]  # a's span ends at 0.18
    assert split_instants(samples) == []


def test_a_hung_sample_does_not_stretch_a_span_past_its_start() -> None:
    # A's last sample hangs for 5 s (paused, cut off) and then commits: the span ends at that sample's start.
    samples = run("a", 0.0, 10) + [Sample("a", 0.2, 5.2, 1, "W")] + run("b", 1.0, 50)
    assert split_instants(samples) == []


def test_three_nodes_and_several_windows_are_merged_per_window() -> None:
    samples = (run("a", 0.0, 100) + run("b", 1.0, 10) + run("c", 1.05, 10)
               + run("b", 3.0, 10, epoch=2) + run("a", 3.0, 10, epoch=2))
    splits = split_instants(samples)
    assert len(splits) == 2
    assert splits[0].start < 2.0 < splits[1].start


def test_parse_samples_leaves_out_a_line_being_written() -> None:
    text = "1.0\t1.01\t1\tW\t\n1.02\t1.03\t1\tR\t25006\n1.04\t1.0"
    samples = parse_samples("n0", text)
    assert [(s.state, s.detail) for s in samples] == [("W", ""), ("R", "25006")]
    assert writers(samples) == {"n0": 1}
    assert within(samples, 1.01, 2.0) == samples[1:]
