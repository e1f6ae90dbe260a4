"""The managed provider layer: balancing, hedging, retries, breakers and limits around
providers, which stay pure translators."""
