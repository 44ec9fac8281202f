"""Entry points and operations: the CLI, doctor, deploy recipes, MCP."""
