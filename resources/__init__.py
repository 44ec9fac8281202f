"""Dagster resources: thin ConfigurableResource wrappers over the plain-Python lake core."""
