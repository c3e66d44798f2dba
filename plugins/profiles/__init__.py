"""Built-in security profiles."""
