"""Pure parts of the benchmarks under bench/."""
