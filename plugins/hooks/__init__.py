"""Built-in attach/detach lifecycle hooks, one module per concern."""
