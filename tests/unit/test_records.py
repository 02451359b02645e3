from aiokafka_history._records import Record, merge_in_write_order, take_first


def r(partition: int, offset: int, timestamp: int) -> Record:
    return Record(partition, offset, timestamp, b"")


def test_one_partition_keeps_offset_order_even_if_clocks_go_backwards() -> None:
    records = [r(0, 0, 50), r(0, 1, 10), r(0, 2, 30)]
    assert merge_in_write_order({0: records}) == records


def test_partitions_interleave_by_timestamp_then_partition() -> None:
    merged = merge_in_write_order(
        {0: [r(0, 0, 3), r(0, 1, 4)], 1: [r(1, 0, 1), r(1, 1, 2)], 2: [r(2, 0, 3)]}
    )
    assert [(x.partition, x.offset) for x in merged] == [(1, 0), (1, 1), (0, 0), (2, 0), (0, 1)]


def test_merge_keeps_each_partition_in_offset_order() -> None:
    merged = merge_in_write_order({0: [r(0, 0, 9), r(0, 1, 1)], 1: [r(1, 0, 5)]})
    zero = [x.offset for x in merged if x.partition == 0]
    assert zero == [0, 1]


def test_take_first_positions_after_what_was_taken() -> None:
    merged = [r(1, 7, 1), r(0, 3, 2), r(1, 8, 3)]
    taken, positions = take_first(merged, 2, {0: 3, 1: 7, 2: 5})
    assert taken == merged[:2]
    assert positions == {0: 4, 1: 8, 2: 5}
    all_taken, all_positions = take_first(merged, None, {0: 3, 1: 7})
    assert all_taken == merged
    assert all_positions == {0: 4, 1: 9}
