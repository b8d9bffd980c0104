"""How Azurite slows as a table or a queue grows: the local limits under the big sweeps.

The 5,000-VM sweep (``bench/sweep.py``) finished its reads but did pins at ~0.5 steps/s,
where the 500-VM sweep did ~3/s on the same code. Every pin step reads its object's
references with one ``PartitionKey eq`` query of the inventory table (130,000 rows at 5,000
VMs with 6 points each), and the inventory steps write the same table. In Azure a partition
query is served from the partition's index, so its cost does not grow with the table. This
script measures whether Azurite's does: it fills one table in entity-group batches of 100
(partitions of 25 rows, as the inventory's ``rp|``/``obj|`` partitions are small) and, at
each size, times 100 point reads, 100 one-partition queries and 100 single upserts from one
client (one connection, no concurrency: the latency of one request, not throughput).

The work queue is the other thing that grows: the 5,000-VM sweep's VM steps enqueue ~10,000
pin messages (every VM its BEK secret, and its vault's shared KEK again), so the host's queue
trigger receives from a queue thousands deep. The script then fills one queue to each of
``--depths`` and times 100 receives of 16 messages (the host's ``batchSize``; received messages
stay in the queue, invisible), 100 sends and 100 deletes of received messages.

Run from the repository root: ``.venv/bin/python bench/azurite_tables.py [--sizes ...]``.
Prints a table per size, then ``name: value`` headline figures last.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARTITION_ROWS = 25
SAMPLES = 100


def _fill(table: object, start: int, stop: int) -> None:
    """Rows ``start``..``stop`` (exclusive), one transaction per partition of 25."""
    for first in range(start, stop, PARTITION_ROWS):
        part = f"p|{first // PARTITION_ROWS:07d}"
        ops = [
            ("upsert", {"PartitionKey": part, "RowKey": f"r{n:07d}", "url": "x" * 120, "n": n})
            for n in range(first, min(first + PARTITION_ROWS, stop))
        ]
        table.submit_transaction(ops)  # type: ignore[attr-defined]


def _median_ms(call: object, count: int, samples: int = SAMPLES) -> float:
    """The median latency of ``samples`` calls ``call(i % count)``, in milliseconds."""
    times = []
    for i in range(samples):
        started = time.perf_counter()
        call(i % count)  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 40000, 130000])
    parser.add_argument("--depths", type=int, nargs="+", default=[100, 1000, 5000, 10000])
    args = parser.parse_args()

    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueClient, QueueMessage

    from local.azurite import Azurite

    azurite = Azurite.start()
    try:
        service = TableServiceClient.from_connection_string(azurite.connection_string)
        table = service.create_table("Scaling")
        rows, results = 0, []
        for size in sorted(args.sizes):
            started = time.perf_counter()
            _fill(table, rows, size)
            fill_s = time.perf_counter() - started
            fill_per_row_ms = fill_s * 1000 / max(1, size - rows)
            rows = size
            parts = size // PARTITION_ROWS
            get_ms = _median_ms(
                lambda i, p=parts: table.get_entity(
                    f"p|{(i * 7919) % p:07d}", f"r{((i * 7919) % p) * PARTITION_ROWS:07d}"
                ),
                parts,
            )
            query_ms = _median_ms(
                lambda i, p=parts: list(
                    table.query_entities(
                        "PartitionKey eq @p", parameters={"p": f"p|{(i * 7919) % p:07d}"}
                    )
                ),
                parts,
            )
            upsert_ms = _median_ms(
                lambda i, p=parts: table.upsert_entity(
                    {"PartitionKey": f"p|{(i * 7919) % p:07d}", "RowKey": "extra", "n": i}
                ),
                parts,
            )
            results.append((size, get_ms, query_ms, upsert_ms, fill_per_row_ms))
            print(
                f"rows {size:>7}: point read {get_ms:7.1f} ms, partition query {query_ms:7.1f} ms,"
                f" upsert {upsert_ms:7.1f} ms (median of {SAMPLES});"
                f" fill {fill_per_row_ms:.2f} ms/row in batches of {PARTITION_ROWS}",
                flush=True,
            )
        queue = QueueClient.from_connection_string(azurite.connection_string, "depth")
        queue.create_queue()
        depth, queued = 0, []
        for wanted in sorted(args.depths):
            for _ in range(depth, wanted):
                queue.send_message("x" * 600)
            depth = wanted
            received: list[QueueMessage] = []
            receive_ms = _median_ms(
                lambda i, r=received: r.extend(
                    queue.receive_messages(
                        messages_per_page=16, visibility_timeout=3600, max_messages=16
                    )
                ),
                1,
            )
            send_ms = _median_ms(lambda i: queue.send_message("x" * 600), 1)
            delete_ms = _median_ms(
                lambda i, r=received: queue.delete_message(r[i]),
                len(received),
                samples=min(SAMPLES, len(received)),
            )
            queued.append((wanted, receive_ms, send_ms, delete_ms))
            print(
                f"queue depth {wanted:>6}: receive 16 {receive_ms:7.1f} ms, send {send_ms:6.1f} ms,"
                f" delete {delete_ms:6.1f} ms (median of {SAMPLES})",
                flush=True,
            )
    finally:
        azurite.stop()
    small, large = results[0], results[-1]
    print(f"azurite_rows_small: {small[0]}")
    print(f"azurite_rows_large: {large[0]}")
    print(f"azurite_point_read_ms_small: {small[1]:.1f}")
    print(f"azurite_point_read_ms_large: {large[1]:.1f}")
    print(f"azurite_partition_query_ms_small: {small[2]:.1f}")
    print(f"azurite_partition_query_ms_large: {large[2]:.1f}")
    print(f"azurite_upsert_ms_small: {small[3]:.1f}")
    print(f"azurite_upsert_ms_large: {large[3]:.1f}")
    print(f"azurite_partition_query_slowdown: {large[2] / small[2]:.1f}")
    print(f"azurite_queue_depth_small: {queued[0][0]}")
    print(f"azurite_queue_depth_large: {queued[-1][0]}")
    print(f"azurite_receive_ms_small: {queued[0][1]:.1f}")
    print(f"azurite_receive_ms_large: {queued[-1][1]:.1f}")
    print(f"azurite_delete_ms_small: {queued[0][3]:.1f}")
    print(f"azurite_delete_ms_large: {queued[-1][3]:.1f}")
    print(f"azurite_receive_slowdown: {queued[-1][1] / queued[0][1]:.1f}")


if __name__ == "__main__":
    main()
