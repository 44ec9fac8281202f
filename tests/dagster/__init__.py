"""The Dagster layer: definitions, assets via materialize, sensors, checks, dg dev, the Postgres instance."""
