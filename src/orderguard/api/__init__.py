"""HTTP: parse, call a service, map errors — nothing else."""
