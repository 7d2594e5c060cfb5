"""ditserve export tooling: turns diffusers checkpoints into ditserve model directories (docs/model_format.md)."""
