"""Hot reload: the import tracker feeds the Rust graph, the executor re-runs modules in place."""
