"""Generated protobuf and gRPC stubs for portico.v1 (do not edit; run `make generate`)."""
