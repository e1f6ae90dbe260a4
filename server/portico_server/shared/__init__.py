"""State every worker and replica of one gateway shares through Redis: rate limits,
concurrency leases and token budgets. Without a `redis:` section nothing here runs and
each process counts on its own."""
