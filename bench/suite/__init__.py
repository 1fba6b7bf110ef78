"""The benchmark suite behind `make bench` (bench/README.md)."""
