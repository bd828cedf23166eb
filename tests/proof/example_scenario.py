"""The harness's own example scenario (not a slotguard rule): checkout without return.

Each iteration takes a connection from a psycopg pool and never puts it back,
so after K iterations the pool is exhausted and the rest time out. It follows
the protocol in ``proof.observe``; per-rule scenarios look like this.
"""

from __future__ import annotations

import json

from psycopg_pool import ConnectionPool, PoolTimeout

from proof.observe import parse_scenario_args, psycopg_pool_counts

ACQUIRE_TIMEOUT_SECONDS = 0.2


def main() -> None:
    args = parse_scenario_args()
    pool = ConnectionPool(args.dsn, min_size=0, max_size=args.pool_size, open=True)
    results = []
    for _ in range(args.iterations):
        try:
            pool.getconn(timeout=ACQUIRE_TIMEOUT_SECONDS)
        except PoolTimeout:
            results.append("timed out")
        else:
            results.append("acquired")
    report = {
        "checked_out": psycopg_pool_counts(pool).checked_out,
        "results": results,
        "timed_out": "timed out" in results,
    }
    print(json.dumps(report), flush=True)
    pool.close()


if __name__ == "__main__":
    main()
