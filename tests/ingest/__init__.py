"""CSV in: inference by the contract's rules, conversion, contracts, hostile files."""
