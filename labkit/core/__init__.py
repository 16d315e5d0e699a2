"""The core layer: errors, rendering, the engine and what this machine can do, a session's identity,
the host resources it owns, and their removal. Nothing here imports a layer above it."""
