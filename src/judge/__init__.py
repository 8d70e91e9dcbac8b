"""judge: scores shadow pairs and writes them to ClickHouse."""
