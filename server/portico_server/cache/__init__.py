"""The response cache: exact answers by a canonical hash of the request, optionally
semantic ones by the similarity of the last user message (docs/response-cache.md)."""
