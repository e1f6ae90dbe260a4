"""The managed provider layer: rate limits, breakers, retries and fallbacks around providers."""
