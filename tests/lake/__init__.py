"""The lake: storage backends, the catalog, keys and fingerprints, faults and crashes."""
